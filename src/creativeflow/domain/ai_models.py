"""The code of an AI model of Odoo's catalogue, and the one place its syntax lives.

Odoo is the authority over which models a tier allows and which one a request runs on when it
asks for none (``creativeflow.ai.model``, ``allowed_model_ids``, ``default_model_id``): the service
only checks that a code a client sends is one a catalogue could hold, then asks Odoo, whose debit
grants the model or refuses it (``model_not_allowed``). The API's ``model`` field, the Odoo
emulator and the fake credit service take :data:`PATTERN` from here; the Odoo addon, which cannot
import this package, keeps its own copy, and a test holds the two equal.
"""

from __future__ import annotations

import re

# lower case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64
# characters: no blank, no control character, nothing to escape (no anchors: full-match it)
PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
_CODE = re.compile(PATTERN)

ADVANCED_MODEL = "creativeflow-advanced-v1"
"""What ``advanced_model: true`` asked for before the catalogue: the shipped advanced model."""


def is_model_code(value: object) -> bool:
    return isinstance(value, str) and _CODE.fullmatch(value) is not None
