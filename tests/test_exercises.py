"""Every chapter exercise has a worked solution, hidden until the reader opens it.

A chapter's exercises are the numbered items under its "## Exercises" heading
(the list may run over several markdown cells, with the solution's hidden code
cells between them). Each item holds a "Solution" admonition with the
``dropdown`` class; the one exception is the item that sends the reader to the
chapter's lab, whose solutions are the lab's own (``labs/solutions/``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))

ITEM = re.compile(r"^(\d+)\. ", re.M)
SOLUTION = re.compile(r"^[ \t]*:::\{admonition\} Solution[ \t]*\n[ \t]*:class: dropdown[ \t]*$",
                      re.M)
LAB_POINTER = re.compile(r"\{doc\}`\.\./labs/")


def exercises_text(notebook: Path) -> str:
    """The markdown from the "## Exercises" heading to the end of the chapter."""
    cells = json.loads(notebook.read_text())["cells"]
    text = "\n".join("".join(cell["source"]) for cell in cells
                     if cell["cell_type"] == "markdown")
    start = text.find("## Exercises")
    assert start >= 0, f"{notebook.name}: no '## Exercises' section"
    return text[start:]


def exercise_items(text: str) -> dict[int, str]:
    """Numbered item -> its text, up to the next item."""
    starts = list(ITEM.finditer(text))
    return {int(m.group(1)): text[m.start(): nxt.start() if nxt else len(text)]
            for m, nxt in zip(starts, starts[1:] + [None])}


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_exercise_has_a_hidden_solution(notebook: Path):
    items = exercise_items(exercises_text(notebook))
    assert len(items) >= 3, f"{notebook.name}: fewer than three exercises"
    assert sorted(items) == list(range(1, len(items) + 1)), (
        f"{notebook.name}: exercises numbered {sorted(items)}")
    missing = [number for number, item in items.items()
               if not LAB_POINTER.search(item) and not SOLUTION.search(item)]
    assert not missing, f"{notebook.name}: exercises {missing} have no dropdown solution"


def test_the_checks_reject_an_exercise_without_solution():
    text = ("## Exercises\n\n1. Do this.\n\n   :::{admonition} Solution\n   :class: dropdown\n"
            "   Done.\n   :::\n\n2. Do that.\n\n3. Lab 1 ({doc}`../labs/01_ad_log`) asks.\n")
    items = exercise_items(text)
    assert sorted(items) == [1, 2, 3]
    assert SOLUTION.search(items[1]) and not SOLUTION.search(items[2])
    assert LAB_POINTER.search(items[3])
    open_solution = text.replace(":class: dropdown", ":class: note")
    assert not SOLUTION.search(exercise_items(open_solution)[1])
