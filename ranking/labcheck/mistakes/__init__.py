"""Known mistakes: wrong answers to the labs' exercises, each with the hint it deserves.

Lab N's known mistakes live in ``labNN.py`` (lab 1's in ``lab01.py``): plain functions,
each a wrong version of an exercise written as a reader might write it, filed with
``@mistake("exercise", hint="...")``. Open one to see what the checks look out for.

When the reader's answer is wrong, the check runs the known mistakes of that exercise on
the same inputs (``Answers``) and shows the hint of each mistake that gives the reader's
answers. The tests (tests/test_labs.py) run every known mistake through its check: it must
be rejected, with its hint in the message.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Callable

import numpy as np

from ..common import Mistake, hint
from . import (lab01, lab02, lab03, lab04, lab05, lab06, lab07, lab08, lab09, lab10,
               labA1)

LABS = (lab01, lab02, lab03, lab04, lab05, lab06, lab07, lab08, lab09, lab10, labA1)


def every_mistake() -> list[Mistake]:
    """Every known mistake of every lab, in the order they are written."""
    return [value for lab in LABS for value in vars(lab).values()
            if isinstance(value, Mistake)]


def catalogue(exercise: str) -> list[Mistake]:
    """The known mistakes of one exercise."""
    return [known for known in every_mistake() if known.exercise == exercise]


class Answers:
    """The reader's answers to one exercise, case by case, to tell which mistake gave them.

    ``same(a mistake's answer, the reader's answer)`` says whether two answers agree.
    """

    def __init__(self, exercise: str, same: Callable[[Any, Any], bool]) -> None:
        self.exercise = exercise
        self.same = same
        self.cases: list[tuple[Any, tuple, dict]] = []

    def add(self, answer: Any, *args: Any, **kwargs: Any) -> None:
        """Record the reader's answer to one case, and the inputs as the check made them."""
        self.cases.append((answer, args, kwargs))

    def hint(self, fallback: str) -> str:
        """The hints of the known mistakes that give every answer recorded, else ``fallback``.

        A mistake that answers an earlier case differently is not the reader's mistake.
        The last case goes first: most mistakes miss it, and are not run on the others.
        """
        if not self.cases:
            return fallback
        return hint([known.hint for known in catalogue(self.exercise)
                     if known.hint and all(self._gives(known, *case)
                                           for case in reversed(self.cases))], fallback)

    def _gives(self, known: Mistake, answer: Any, args: tuple, kwargs: dict) -> bool:
        """Whether the mistake, run on copies of the inputs, gives the reader's answer."""
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                theirs = known.function(*copy.deepcopy(args), **copy.deepcopy(kwargs))
                return bool(self.same(theirs, answer))
        except Exception:                  # noqa: BLE001 - a mistake that fails gives nothing
            return False
