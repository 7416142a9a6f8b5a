"""The emulated Odoo's accounts and ledger kept in a file between runs of the local stack.

A real Odoo keeps its ledger in PostgreSQL, beside the tracking database the orchestrator keeps:
restarting the local stack must not forget one and keep the other, or reconciliation would
report every request as a mismatch. The file is JSON (``{"format": 1, "accounts": [...],
"entries": [...]}``), written atomically: a temporary file in the same directory, flushed to
disk, then renamed over the old one, so a stack killed while writing leaves the previous state
whole. A state that has not changed since it was last read or written is not written again.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .ledger import CreditLedger

FORMAT = 1


class StateUnreadable(ValueError):
    """The file exists but holds no state this emulator can take back."""


class StateFile:
    """One emulator's state file; ``load`` once at start, ``save`` as often as wanted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: str | None = None

    def load(self, ledger: CreditLedger) -> bool:
        """Replace the ledger's accounts and entries with the file's; False when there is none."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        try:
            document = json.loads(text)
            if document.get("format", FORMAT) != FORMAT:
                raise ValueError(f"format {document.get('format')!r}, not {FORMAT}")
            ledger.restore(document)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise StateUnreadable(
                f"the emulated Odoo's state {self.path} cannot be read ({type(error).__name__}): "
                "remove it, or start afresh with --reset"
            ) from None
        self._last = text
        return True

    def save(self, ledger: CreditLedger) -> bool:
        """Write the ledger's accounts and entries; False when they had not changed."""
        text = json.dumps({"format": FORMAT, **ledger.snapshot()}, indent=1)
        if text == self._last:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial"
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, self.path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        self._last = text
        return True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self._last = None
