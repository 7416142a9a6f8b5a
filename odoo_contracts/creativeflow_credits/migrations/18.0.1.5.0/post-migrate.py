# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
"""18.0.1.5.0: tiers choose their models from the catalogue instead of one on/off switch.

Before, ``allow_advanced_models`` was a stored Boolean. It is now computed from the tier's
allowed models, and Odoo keeps the old column in place, so this script reads it once: every tier
gets the standard model as its default and among its allowed models, and the advanced model too
where the switch was on. A tier that already has allowed models (a second run, or an admin who
was quicker) is left as it is. Ledger entries written before keep no model (``model: false``).
"""

import logging

from odoo import SUPERUSER_ID, api

_logger = logging.getLogger(__name__)

OLD_COLUMN_SQL = """
    SELECT 1 FROM information_schema.columns
     WHERE table_name = 'creativeflow_subscription_tier' AND column_name = 'allow_advanced_models'
"""
OLD_SWITCH_SQL = "SELECT id, allow_advanced_models FROM creativeflow_subscription_tier"


def migrate(cr, version):
    if not version:
        return  # a fresh install: the data and demo files set the models
    cr.execute(OLD_COLUMN_SQL)
    advanced_was_on = {}
    if cr.fetchone():
        cr.execute(OLD_SWITCH_SQL)
        advanced_was_on = {tier_id: bool(on) for tier_id, on in cr.fetchall()}
    env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
    standard = env.ref("creativeflow_credits.ai_model_standard_v1")
    advanced = env.ref("creativeflow_credits.ai_model_advanced_v1")
    for tier in env["creativeflow.subscription.tier"].search([]):
        if tier.allowed_model_ids:
            continue
        allowed = standard | advanced if advanced_was_on.get(tier.id) else standard
        tier.write({"allowed_model_ids": [(6, 0, allowed.ids)], "default_model_id": standard.id})
        _logger.info(
            "tier %s: models %s, default %s", tier.code, allowed.mapped("code"), standard.code
        )
