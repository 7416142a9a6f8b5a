# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .credit_service import LEGACY_ADVANCED_MODEL

STANDARD_MODEL_XMLID = "creativeflow_credits.ai_model_standard_v1"


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
    allowed_model_ids = fields.Many2many(
        "creativeflow.ai.model",
        "creativeflow_subscription_tier_ai_model_rel",
        "tier_id",
        "model_id",
        string="Allowed models",
        default=lambda self: self._standard_model(),
        help="The AI models this tier's users may ask for. Archived models are never granted.",
    )
    default_model_id = fields.Many2one(
        "creativeflow.ai.model",
        string="Default model",
        ondelete="restrict",
        default=lambda self: self._standard_model(),
        help="The model a request runs on when it asks for none; one of the allowed models.",
    )
    # Older orchestrators read limits.advanced_models and send spec.advanced_model.
    allow_advanced_models = fields.Boolean(
        compute="_compute_allow_advanced_models",
        help="Whether the tier allows the advanced model (creativeflow-advanced-v1), which an "
        "older orchestrator asks for with advanced_model: true.",
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

    @api.model
    def _standard_model(self):
        """The catalogue's standard model, a new tier's default (none if it was deleted)."""
        return (
            self.env.ref(STANDARD_MODEL_XMLID, raise_if_not_found=False)
            or self.env["creativeflow.ai.model"]
        )

    @api.constrains("allowed_model_ids", "default_model_id")
    def _check_default_model(self):
        for tier in self:
            if not tier.default_model_id:
                raise ValidationError(
                    self.env._("Tier %(tier)s needs a default model.", tier=tier.name)
                )
            if tier.default_model_id not in tier._every_allowed_model():
                raise ValidationError(
                    self.env._(
                        "The default model of tier %(tier)s (%(model)s) must be one of its "
                        "allowed models.",
                        tier=tier.name,
                        model=tier.default_model_id.code,
                    )
                )

    @api.depends("allowed_model_ids.code", "allowed_model_ids.active")
    def _compute_allow_advanced_models(self):
        for tier in self:
            tier.allow_advanced_models = LEGACY_ADVANCED_MODEL in tier._model_codes()

    def _every_allowed_model(self):
        """The allowed models, archived ones included (an x2many hides them by default)."""
        self.ensure_one()
        allowed = self.with_context(active_test=False).allowed_model_ids
        return allowed.sorted(lambda model: (model.sequence, model.id))

    def _model_codes(self):
        """The codes of the models the tier grants: allowed and not archived, in catalogue
        order (used by the credit service)."""
        self.ensure_one()
        granted = self._every_allowed_model().filtered("active")
        return granted.mapped("code")

    def _default_model_code(self):
        """The code of the model a request that asks for none runs on, or False when the tier
        has none it can grant (its default archived, or not among the allowed)."""
        self.ensure_one()
        default = self.default_model_id
        if default and default.active and default in self._every_allowed_model():
            return default.code
        return False

    def _format_list(self):
        """The tier's output formats as a list (used by the credit service)."""
        self.ensure_one()
        return split_formats(self.allowed_formats)
