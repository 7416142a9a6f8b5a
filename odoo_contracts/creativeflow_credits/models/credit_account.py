# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

MANAGER_GROUP = "creativeflow_credits.group_manager"

# Every balance movement takes this row lock first, so two movements of one account never
# interleave between "read the balance" and "write the entry".
LOCK_ACCOUNT_ROW_SQL = "SELECT id FROM creativeflow_credit_account WHERE id = %s FOR UPDATE"

# A new version of the locked row, changing nothing: a concurrent transaction waiting on the lock
# then fails to serialize (Odoo retries it with a fresh snapshot) instead of acting on a stale one.
TOUCH_ACCOUNT_ROW_SQL = (
    "UPDATE creativeflow_credit_account SET write_date = write_date WHERE id = %s"
)

MOVE_BALANCE_SQL = """
    UPDATE creativeflow_credit_account
       SET balance = balance + %s, write_uid = %s, write_date = %s
     WHERE id = %s
 RETURNING balance
"""


class CreditAccount(models.Model):
    _name = "creativeflow.credit.account"
    _description = "CreativeFlow credit account"
    _rec_name = "platform_user_id"
    _order = "platform_user_id, id"

    platform_user_id = fields.Char(
        string="Platform user id",
        required=True,
        index=True,
        copy=False,
        help="The user id the CreativeFlow gateway authenticates.",
    )
    partner_id = fields.Many2one(
        "res.partner",
        string="Customer",
        index=True,
        ondelete="restrict",
    )
    tier_id = fields.Many2one(
        "creativeflow.subscription.tier",
        string="Tier",
        required=True,
        index=True,
        ondelete="restrict",
    )
    balance = fields.Integer(
        readonly=True,
        default=0,
        copy=False,
        help="Credits available. Changed only by ledger entries: debits, refunds, adjustments.",
    )
    ledger_ids = fields.One2many(
        "creativeflow.credit.ledger",
        "account_id",
        string="Ledger entries",
        readonly=True,
    )
    generated_asset_ids = fields.One2many(
        "creativeflow.generated.asset",
        "account_id",
        string="Generated assets",
        readonly=True,
    )
    generated_asset_count = fields.Integer(
        string="Assets",
        compute="_compute_generated_asset_count",
    )

    _sql_constraints = [
        (
            "platform_user_id_unique",
            "UNIQUE(platform_user_id)",
            "A platform user has one credit account only.",
        ),
        (
            "balance_not_negative",
            "CHECK(balance >= 0)",
            "A credit balance cannot go below zero.",
        ),
    ]

    @api.depends("generated_asset_ids")
    def _compute_generated_asset_count(self):
        for account in self:
            account.generated_asset_count = len(account.generated_asset_ids)

    def action_view_generated_assets(self):
        """The account's generated assets, for the form's smart button."""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "creativeflow_credits.creativeflow_generated_asset_action"
        )
        action["domain"] = [("account_id", "=", self.id)]
        action["context"] = {"create": False}
        return action

    @api.model_create_multi
    def create(self, vals_list):
        if any(vals.get("balance") for vals in vals_list):
            raise UserError(
                self.env._("An account opens with a zero balance; credit it with an adjustment.")
            )
        return super().create(vals_list)

    def write(self, vals):
        if "balance" in vals:
            raise UserError(
                self.env._('A balance changes only through ledger entries: use "Adjust balance".')
            )
        if "platform_user_id" in vals:
            renamed = self.filtered(
                lambda account: (
                    account.ledger_ids and account.platform_user_id != vals["platform_user_id"]
                )
            )
            if renamed:
                raise UserError(
                    self.env._(
                        "The platform user id of an account with ledger entries cannot change: "
                        "the ledger must keep naming the user it debited."
                    )
                )
        return super().write(vals)

    def action_adjust(self, amount, reason):
        """Correct the balance by ``amount`` (signed) with an ``adjustment`` ledger entry.

        Managers only. Returns the id of the new ledger entry.
        """
        self.ensure_one()
        if not self.env.user.has_group(MANAGER_GROUP):
            raise AccessError(self.env._("Only CreativeFlow credit managers may adjust a balance."))
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
            raise UserError(self.env._("An adjustment is a whole, non-zero number of credits."))
        if not isinstance(reason, str) or not reason.strip():
            raise UserError(self.env._("An adjustment needs a reason."))
        account = self.sudo()
        account._lock_for_update()
        if account.balance + amount < 0:
            raise UserError(
                self.env._(
                    "This adjustment would leave %(user)s with %(balance)s credits; "
                    "a balance cannot go below zero.",
                    user=account.platform_user_id,
                    balance=account.balance + amount,
                )
            )
        entry = account._post_ledger_entry("adjustment", amount, reason=reason.strip())
        return entry.id

    def _lock_for_update(self):
        """Take the account's row lock for the rest of the transaction."""
        self.ensure_one()
        self.env.cr.execute(LOCK_ACCOUNT_ROW_SQL, [self.id])
        # The balance may have been read (and cached) before the lock was granted.
        self.invalidate_recordset(["balance"])

    def _touch_locked_row(self):
        """After ``_lock_for_update``: make writers waiting on the lock retry (see above)."""
        self.ensure_one()
        self.env.cr.execute(TOUCH_ACCOUNT_ROW_SQL, [self.id])

    def _post_ledger_entry(
        self,
        operation,
        amount,
        request_id=False,
        action=False,
        reason=False,
        correlation_id=False,
        model=False,
    ):
        """Move the balance and write the matching ledger entry; the caller holds the row lock.

        A debit lowers the balance by ``amount``; a refund raises it; an adjustment adds its signed
        ``amount``. ``model`` is the ``creativeflow.ai.model`` the movement paid for (a debit's
        granted model, which its refund repeats). The row is always updated, even for a zero
        amount, so that a concurrent transaction waiting on the lock fails to serialize and is
        retried by Odoo instead of acting on a stale snapshot.
        """
        self.ensure_one()
        delta = -amount if operation == "debit" else amount
        self.flush_recordset(["balance"])
        self.env.cr.execute(MOVE_BALANCE_SQL, [delta, self.env.uid, self.env.cr.now(), self.id])
        (balance_after,) = self.env.cr.fetchone()
        self.invalidate_recordset(["balance", "write_uid", "write_date"])
        return (
            self.env["creativeflow.credit.ledger"]
            .sudo()
            .create(
                {
                    "account_id": self.id,
                    "request_id": request_id or False,
                    "action": action or False,
                    "operation": operation,
                    "amount": amount,
                    "balance_after": balance_after,
                    "reason": reason or False,
                    "correlation_id": correlation_id or False,
                    "model_id": model.id if model else False,
                }
            )
        )
