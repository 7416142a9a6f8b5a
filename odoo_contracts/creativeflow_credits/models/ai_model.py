# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from .credit_service import MODEL_CODE_PATTERN


class AiModel(models.Model):
    """One AI model of the catalogue: tiers list the models their users may run, and the
    ledger records which model each debit paid for."""

    _name = "creativeflow.ai.model"
    _description = "CreativeFlow AI model"
    _order = "sequence, id"
    _rec_name = "name"

    name = fields.Char(required=True, translate=True)
    code = fields.Char(
        required=True,
        copy=False,
        help="Stable key the orchestrator and n8n see, e.g. creativeflow-standard-v1: lower "
        "case letters, digits, '.', '_' and '-', at most 64 characters. Never rename it: the "
        "ledger and the jobs already sent carry it.",
    )
    sequence = fields.Integer(default=10)
    active = fields.Boolean(
        default=True,
        help="An archived model is no longer granted, even on tiers that still list it; "
        "the ledger entries that name it keep it.",
    )
    description = fields.Text(help="What the model is good at, for admins and support.")
    tier_ids = fields.Many2many(
        "creativeflow.subscription.tier",
        "creativeflow_subscription_tier_ai_model_rel",
        "model_id",
        "tier_id",
        string="Tiers",
        readonly=True,
    )

    _sql_constraints = [
        ("code_unique", "UNIQUE(code)", "The code of a model must be unique."),
    ]

    @api.constrains("code")
    def _check_code(self):
        for model in self:
            if not MODEL_CODE_PATTERN.fullmatch(model.code or ""):
                raise ValidationError(
                    self.env._(
                        "Model code %(code)r must be lower case letters, digits, '.', '_' and "
                        "'-', start with a letter or digit and have at most 64 characters.",
                        code=model.code,
                    )
                )

    def write(self, vals):
        if "code" in vals:
            renamed = self.filtered(lambda model: model.code != vals["code"])
            if renamed and renamed._named_by_the_ledger():
                raise UserError(
                    self.env._(
                        "The code of a model the ledger names cannot change: the ledger and the "
                        "jobs already sent carry it. Archive it and create a new model instead."
                    )
                )
        return super().write(vals)

    def _named_by_the_ledger(self):
        ledger = self.env["creativeflow.credit.ledger"].sudo()
        return bool(ledger.search_count([("model_id", "in", self.ids)], limit=1))

    @api.ondelete(at_uninstall=False)
    def _unlink_except_in_the_ledger(self):
        if self._named_by_the_ledger():
            raise UserError(
                self.env._("A model the ledger names cannot be deleted: archive it instead.")
            )
