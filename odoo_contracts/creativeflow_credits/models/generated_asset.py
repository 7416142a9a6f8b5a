# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
from odoo import api, fields, models
from odoo.exceptions import UserError


class GeneratedAsset(models.Model):
    """The final asset of one generation request, as the orchestrator stored it, with the
    ledger entries (debits) that paid for it. Written once by the credit service
    (``record_generated_asset``), never changed nor deleted: admins audit it."""

    _name = "creativeflow.generated.asset"
    _description = "CreativeFlow generated asset"
    _rec_name = "request_id"
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
        required=True,
        index=True,
        readonly=True,
        help="The orchestrator's generation request id: one final asset per request.",
    )
    ledger_entry_ids = fields.Many2many(
        "creativeflow.credit.ledger",
        "creativeflow_generated_asset_ledger_rel",
        "asset_id",
        "ledger_entry_id",
        string="Paid by",
        readonly=True,
        help="The request's debits that paid for this asset.",
    )
    storage_key = fields.Char(
        string="Storage key",
        required=True,
        readonly=True,
        help="Where the orchestrator's object storage keeps the file.",
    )
    format = fields.Char(required=True, readonly=True, help="File format, e.g. png.")
    width = fields.Integer(required=True, readonly=True, help="Pixels.")
    height = fields.Integer(required=True, readonly=True, help="Pixels.")
    checksum = fields.Char(
        string="SHA-256",
        required=True,
        readonly=True,
        help="SHA-256 of the stored file, 64 lower-case hexadecimal digits.",
    )
    byte_size = fields.Integer(string="Size (bytes)", required=True, readonly=True)
    create_date = fields.Datetime(string="Recorded on", readonly=True, index=True)

    _sql_constraints = [
        (
            "request_id_unique",
            "UNIQUE(request_id)",
            "A request has one final asset only.",
        ),
        (
            "dimensions_positive",
            "CHECK(width > 0 AND height > 0 AND byte_size > 0)",
            "An asset has a width, a height and a size.",
        ),
    ]

    @api.depends("request_id", "format", "width", "height")
    def _compute_display_name(self):
        for asset in self:
            asset.display_name = f"{asset.request_id} ({asset.width}x{asset.height} {asset.format})"

    @api.model_create_multi
    def create(self, vals_list):
        # Only the credit service writes assets, in superuser mode, after checking that the
        # ledger entries are the request's debits on the same account.
        if not self.env.su:
            raise UserError(self.env._("Generated assets are recorded by the credit service only."))
        return super().create(vals_list)

    def write(self, vals):
        raise UserError(self.env._("A generated asset is recorded once and never changed."))

    def copy(self, default=None):
        raise UserError(self.env._("Generated assets cannot be duplicated."))

    @api.ondelete(at_uninstall=False)
    def _unlink_except_recorded(self):
        raise UserError(self.env._("Generated assets are kept for audit and cannot be deleted."))
