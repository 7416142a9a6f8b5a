"""The name a paid step is charged under, and the one place its grammar lives.

Odoo's ledger holds one debit per (request id, action), and answers a repeated debit with the
first one; so each paid attempt has its own name:

- ``samples``: the request's first samples;
- ``final``, then ``final-2``, ``final-3``...: the final asset, a new name after each refunded
  attempt (a refunded name would be answered as a replay and charge nothing);
- ``regeneration-1``, ``regeneration-2``...: each new round of samples.

Numbers have no leading zero, so one attempt has one spelling in the ledger. The job schema's
``action`` pattern, the Odoo emulator and the fake credit service all take :data:`PATTERN` from
here; the Odoo addon, which cannot import this package, keeps its own copy, and a test holds the
two equal.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class ActionKind(enum.StrEnum):
    SAMPLES = "samples"
    FINAL = "final"
    REGENERATION = "regeneration"


# the grammar, as a regular expression (no anchors: callers full-match it)
PATTERN = r"samples|final|final-(?:[2-9]|[1-9][0-9]+)|regeneration-[1-9][0-9]*"
_GRAMMAR = re.compile(PATTERN)


class InvalidAction(ValueError):
    pass


@dataclass(frozen=True, slots=True, order=True)
class Action:
    kind: ActionKind
    attempt: int = 1  # final: 1 for ``final``, n for ``final-<n>``; regeneration: its round

    @classmethod
    def parse(cls, text: str) -> Action:
        if not isinstance(text, str) or not _GRAMMAR.fullmatch(text):
            raise InvalidAction(
                "action must be samples, final, final-<n> (n >= 2) or regeneration-<n> "
                f"(n >= 1), got {text!r}"
            )
        base, _, number = text.partition("-")
        return cls(ActionKind(base), int(number) if number else 1)

    @classmethod
    def is_valid(cls, text: object) -> bool:
        return isinstance(text, str) and _GRAMMAR.fullmatch(text) is not None

    def __post_init__(self) -> None:
        if self.kind is ActionKind.SAMPLES and self.attempt != 1:
            raise InvalidAction("samples are paid once, as 'samples'")
        if self.attempt < 1:
            raise InvalidAction("an attempt number is at least 1")

    def __str__(self) -> str:
        if self.kind is ActionKind.SAMPLES:
            return "samples"
        if self.kind is ActionKind.FINAL:
            return "final" if self.attempt == 1 else f"final-{self.attempt}"
        return f"regeneration-{self.attempt}"

    def following(self) -> Action:
        """The name the next attempt of this stage is paid under."""
        if self.kind is ActionKind.SAMPLES:
            raise InvalidAction("samples are paid once; a new round is a regeneration")
        return Action(self.kind, self.attempt + 1)

    @property
    def is_final(self) -> bool:
        return self.kind is ActionKind.FINAL


SAMPLES = Action(ActionKind.SAMPLES)
FIRST_FINAL = Action(ActionKind.FINAL)
FIRST_REGENERATION = Action(ActionKind.REGENERATION)
