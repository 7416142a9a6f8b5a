# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
from odoo import api, fields, models


class CreditAdjustWizard(models.TransientModel):
    """Asks a manager for the amount and reason of a balance correction."""

    _name = "creativeflow.credit.adjust.wizard"
    _description = "Adjust a CreativeFlow credit balance"

    account_id = fields.Many2one(
        "creativeflow.credit.account",
        string="Account",
        required=True,
        ondelete="cascade",
    )
    current_balance = fields.Integer(related="account_id.balance", string="Current balance")
    amount = fields.Integer(
        required=True,
        help="Credits to add (positive) or to take away (negative).",
    )
    reason = fields.Char(required=True)
    new_balance = fields.Integer(compute="_compute_new_balance", string="Balance after")

    @api.depends("current_balance", "amount")
    def _compute_new_balance(self):
        for wizard in self:
            wizard.new_balance = wizard.current_balance + wizard.amount

    def action_confirm(self):
        self.ensure_one()
        self.account_id.action_adjust(self.amount, self.reason)
        return {"type": "ir.actions.act_window_close"}
