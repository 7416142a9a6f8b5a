# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
from odoo import api, fields, models
from odoo.exceptions import ValidationError


def split_formats(allowed_formats):
    """The output formats of a comma-separated list, lower-cased, without blanks."""
    return [part.strip().lower() for part in (allowed_formats or "").split(",") if part.strip()]


class SubscriptionTier(models.Model):
    _name = "creativeflow.subscription.tier"
    _description = "CreativeFlow subscription tier"
    _order = "sequence, id"

    name = fields.Char(required=True)
    code = fields.Char(
        required=True,
        copy=False,
        help="Stable key the orchestrator sees, e.g. free, pro, studio.",
    )
    sequence = fields.Integer(default=10)
    active = fields.Boolean(
        default=True,
        help="Archived tiers keep their accounts but are no longer offered.",
    )
    allowed_formats = fields.Char(
        required=True,
        default="png,jpeg",
        help="Comma-separated output formats, e.g. png,jpeg,webp.",
    )
    max_width = fields.Integer(string="Max width (px)", required=True, default=1024)
    max_height = fields.Integer(string="Max height (px)", required=True, default=1024)
    max_samples_per_request = fields.Integer(
        required=True,
        default=1,
        help="Most samples one request, or one regeneration round, may ask for.",
    )
    allow_advanced_models = fields.Boolean(
        help="Whether jobs of this tier may run on the advanced model.",
    )
    max_requests_in_flight = fields.Integer(
        required=True,
        default=1,
        help="Most unfinished generation requests a user may have at once. A new request "
        "(a samples debit) is refused when the orchestrator reports this many already.",
    )
    price_per_sample = fields.Integer(
        required=True,
        default=0,
        help="Credits per sample of the first round.",
    )
    price_final_asset = fields.Integer(
        required=True,
        default=0,
        help="Credits for the high-resolution final asset.",
    )
    price_per_regeneration_sample = fields.Integer(
        required=True,
        default=0,
        help="Credits per sample of each regeneration round.",
    )
    account_ids = fields.One2many(
        "creativeflow.credit.account",
        "tier_id",
        string="Accounts",
        readonly=True,
    )

    _sql_constraints = [
        ("code_unique", "UNIQUE(code)", "The code of a tier must be unique."),
        ("max_width_positive", "CHECK(max_width > 0)", "The largest width must be above zero."),
        (
            "max_height_positive",
            "CHECK(max_height > 0)",
            "The largest height must be above zero.",
        ),
        (
            "max_samples_per_request_positive",
            "CHECK(max_samples_per_request > 0)",
            "The samples per request must be above zero.",
        ),
        (
            "max_requests_in_flight_positive",
            "CHECK(max_requests_in_flight > 0)",
            "The requests in flight must be above zero.",
        ),
        (
            "price_per_sample_not_negative",
            "CHECK(price_per_sample >= 0)",
            "A price cannot be negative.",
        ),
        (
            "price_final_asset_not_negative",
            "CHECK(price_final_asset >= 0)",
            "A price cannot be negative.",
        ),
        (
            "price_per_regeneration_sample_not_negative",
            "CHECK(price_per_regeneration_sample >= 0)",
            "A price cannot be negative.",
        ),
    ]

    @api.constrains("allowed_formats")
    def _check_allowed_formats(self):
        for tier in self:
            if not split_formats(tier.allowed_formats):
                raise ValidationError(
                    self.env._(
                        "Tier %(tier)s must allow at least one output format.", tier=tier.name
                    )
                )

    def _format_list(self):
        """The tier's output formats as a list (used by the credit service)."""
        self.ensure_one()
        return split_formats(self.allowed_formats)
