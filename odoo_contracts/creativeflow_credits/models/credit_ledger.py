# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
from odoo import api, fields, models
from odoo.exceptions import UserError

OPERATIONS = [
    ("debit", "Debit"),
    ("refund", "Refund"),
    ("adjustment", "Adjustment"),
]


class CreditLedger(models.Model):
    """One credit movement. Entries are never changed nor deleted: a balance is corrected by a
    new adjustment entry."""

    _name = "creativeflow.credit.ledger"
    _description = "CreativeFlow credit ledger entry"
    _order = "id desc"

    account_id = fields.Many2one(
        "creativeflow.credit.account",
        string="Account",
        required=True,
        index=True,
        readonly=True,
        ondelete="restrict",
    )
    platform_user_id = fields.Char(
        string="Platform user id",
        related="account_id.platform_user_id",
        store=True,
        index=True,
    )
    request_id = fields.Char(
        string="Request id",
        index=True,
        readonly=True,
        help="The orchestrator's generation request id; empty for adjustments.",
    )
    action = fields.Char(
        readonly=True,
        help="What was paid for: samples, final or final-<n>, regeneration-<n>.",
    )
    operation = fields.Selection(OPERATIONS, required=True, readonly=True)
    model_id = fields.Many2one(
        "creativeflow.ai.model",
        string="Model",
        index=True,
        readonly=True,
        ondelete="restrict",
        help="The AI model the debit granted (a refund names its debit's); empty for "
        "adjustments and for entries written before the model catalogue.",
    )
    amount = fields.Integer(
        required=True,
        readonly=True,
        help="Credits moved: positive for debits and refunds, signed for adjustments.",
    )
    balance_after = fields.Integer(
        string="Balance after",
        required=True,
        readonly=True,
    )
    # what the entry did to the balance, so that a sum (the pivot's total) is the net movement:
    # debits and refunds are both stored as positive amounts
    balance_change = fields.Integer(
        string="Balance change",
        compute="_compute_balance_change",
        store=True,
        readonly=True,
        help="Signed: a debit takes credits (negative), a refund gives them back (positive), "
        "an adjustment as entered.",
    )
    reason = fields.Char(readonly=True)
    correlation_id = fields.Char(string="Correlation id", index=True, readonly=True)
    generated_asset_ids = fields.Many2many(
        "creativeflow.generated.asset",
        "creativeflow_generated_asset_ledger_rel",
        "ledger_entry_id",
        "asset_id",
        string="Generated assets",
        readonly=True,
        help="The final asset this debit paid for, once the orchestrator recorded it.",
    )
    # Redefined only to index it: reconciliation reads the ledger by windows of create_date.
    create_date = fields.Datetime(string="Created on", readonly=True, index=True)

    _sql_constraints = [
        (
            "request_action_operation_unique",
            "UNIQUE(request_id, action, operation)",
            "A request's action is debited once and refunded once.",
        ),
    ]

    @api.depends("operation", "amount")
    def _compute_balance_change(self):
        for entry in self:
            entry.balance_change = -entry.amount if entry.operation == "debit" else entry.amount

    @api.depends("operation", "request_id", "action")
    def _compute_display_name(self):
        labels = dict(OPERATIONS)
        for entry in self:
            origin = "/".join(part for part in (entry.request_id, entry.action) if part)
            entry.display_name = " ".join(
                part for part in (labels.get(entry.operation, ""), origin) if part
            )

    @api.model_create_multi
    def create(self, vals_list):
        # The credit service and the "Adjust balance" action write entries in superuser mode,
        # right after moving the balance under the account's row lock. Anything else would
        # write an entry that no balance reflects.
        if not self.env.su:
            raise UserError(
                self.env._(
                    "Ledger entries are written by the credit service and by "
                    '"Adjust balance" on the account only.'
                )
            )
        return super().create(vals_list)

    def write(self, vals):
        raise UserError(
            self.env._("Ledger entries are immutable: correct a balance with an adjustment entry.")
        )

    def copy(self, default=None):
        raise UserError(self.env._("Ledger entries cannot be duplicated."))

    @api.ondelete(at_uninstall=False)
    def _unlink_except_immutable(self):
        raise UserError(self.env._("Ledger entries are immutable and cannot be deleted."))
