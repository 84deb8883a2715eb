"""The notebook helpers: seeds and threads, glued text, the package's code shown highlighted."""

import os

import torch

from ranking.nn.inputs import ModelInput
from ranking.notebook import _Source, _Text, setup, show_code


def test_setup_pins_one_thread_and_returns_the_scale(monkeypatch):
    monkeypatch.setenv("RANKING_SCALE", "smoke")
    assert setup(seed=3) == "smoke"
    assert torch.get_num_threads() == 1
    first = torch.rand(3)
    setup(seed=3)
    assert torch.equal(torch.rand(3), first)
    assert os.environ["OMP_NUM_THREADS"]


def test_glued_text_shows_without_quotes():
    assert repr(_Text("1.99%")) == "1.99%"


def test_show_code_displays_the_installed_source_as_a_python_block(capsys):
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(ModelInput.forward))
    block = _Source(source)._repr_markdown_()
    assert block.startswith("```python\ndef forward(self")       # a method, dedented
    assert block.endswith("\n```") and "self.embedding(batch)" in block
    assert repr(_Source(source)) == source                           # plain text elsewhere
    show_code(ModelInput.forward)                                   # outside IPython: printed
    assert "def forward(self" in capsys.readouterr().out
