"""tools/glue_values.py: the values it reads from an executed notebook, and what it calls a change."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import glue_values  # noqa: E402


def executed_notebook(gap: str, table_id: str, seconds: str) -> nbformat.NotebookNode:
    """A notebook as a kernel leaves it: a glued value, a print, a styled table, a repr."""
    glued = nbformat.v4.new_output(
        "display_data", data={glue_values.GLUE_PREFIX + "text/plain": gap},
        metadata={"scrapbook": {"name": "gap", "mime_prefix": glue_values.GLUE_PREFIX}})
    printed = nbformat.v4.new_output("stream", name="stdout", text=f"took {seconds} s\n")
    table = nbformat.v4.new_output(
        "execute_result", execution_count=1,
        data={"text/html": f'<table id="T_{table_id}"><td id="T_{table_id}_row0">0.31</td>',
              "text/plain": "<pandas.io.formats.style.Styler at 0x7f3a2b1c>"})
    styler = nbformat.v4.new_output("execute_result", execution_count=2,
                                    data={"text/plain": "<Styler at 0x7fffa1b2>"})
    cells = [nbformat.v4.new_code_cell("glue('gap', ...)", outputs=[glued, printed]),
             nbformat.v4.new_markdown_cell("prose"),
             nbformat.v4.new_code_cell("table", outputs=[table]),
             nbformat.v4.new_code_cell("styler", outputs=[styler])]
    return nbformat.v4.new_notebook(cells=cells)


def dumped(notebook: nbformat.NotebookNode) -> dict:
    return {"notebooks": {"book/x.ipynb": {"glue": glue_values.glued_values(notebook),
                                           "outputs": glue_values.text_outputs(notebook)}}}


def test_reads_glued_values_and_text_outputs_without_random_ids():
    notebook = executed_notebook("31.2%", "a1b2c", "1.5")
    assert glue_values.glued_values(notebook) == {"gap": "31.2%"}
    outputs = glue_values.text_outputs(notebook)
    assert outputs == {"0": "took 1.5 s\n",                  # the glue output left out
                       "2": '<table id="T_"><td id="T__row0">0.31</td>',
                       "3": "<Styler>"}


def test_the_same_numbers_are_no_change_whatever_the_ids():
    before = dumped(executed_notebook("31.2%", "a1b2c", "1.5"))
    after = dumped(executed_notebook("31.2%", "ffff0", "1.5"))
    for section in ("glue", "outputs"):
        assert glue_values.differences(before, after, section) == ([], 0)


def test_a_moved_number_is_a_change_and_a_timing_varies_between_runs():
    before = dumped(executed_notebook("31.2%", "a1b2c", "1.5"))
    rerun = dumped(executed_notebook("31.2%", "a1b2c", "1.7"))     # only the timing moved
    after = dumped(executed_notebook("31.3%", "a1b2c", "1.6"))
    glue, varying = glue_values.differences(before, after, "glue", rerun)
    assert varying == 0 and len(glue) == 1 and "'31.2%'" in glue[0] and "'31.3%'" in glue[0]
    outputs, varying = glue_values.differences(before, after, "outputs", rerun)
    assert len(outputs) == 1 and varying == 1 and "varies between runs" in outputs[0]
