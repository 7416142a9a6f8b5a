"""What the API accepts and answers. Bounds live here so bad input is refused before anything is
stored or charged."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from creativeflow.domain.ai_models import PATTERN as MODEL_CODE_PATTERN
from creativeflow.domain.ai_models import is_model_code
from creativeflow.domain.assets import AssetLink, AssetRole, link_for
from creativeflow.domain.brief import CreativeBrief, CulturalAdaptation, TargetPlatform, Tone
from creativeflow.domain.charges import ChargeState, StageCharge
from creativeflow.domain.credits import LedgerEntry, Quote
from creativeflow.domain.model import GenerationRequest, Sample
from creativeflow.domain.states import Status

OutputFormat = Literal["png", "jpeg", "webp", "tiff"]


def _integral(value: Any) -> Any:
    """JSON Schema's ``integer`` includes ``1024.0``; a string or a fraction stays refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Dimension = Annotated[int, Field(ge=64, le=8192, strict=True), BeforeValidator(_integral)]
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_text_only(value: Any) -> Any:
    # pydantic reads a bare number as unix time; the documented format is ISO 8601 only
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("must be an ISO 8601 date or date-time, such as 2026-12-01T09:00:00Z")
    return value


IsoMoment = Annotated[datetime, BeforeValidator(_iso_text_only)]

# C0 and C1 control characters (NUL among them) mean nothing in text and PostgreSQL cannot store
# NUL: they are refused before anything is stored. Free text may keep tab and line breaks. Lone
# surrogates never get this far: pydantic refuses a string that is not valid Unicode.
CONTROL = r"\x00-\x1f\x7f-\x9f"
CONTROL_BUT_LAYOUT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"


def _refusing(forbidden: str) -> AfterValidator:
    """Refuses any character of the class ``forbidden``, in words a client can act on."""
    found = re.compile(f"[{forbidden}]")
    allowed = (
        "only tab and line breaks are allowed"
        if forbidden == CONTROL_BUT_LAYOUT
        else "use printable characters only"
    )

    def check(value: str) -> str:
        if found.search(value):
            raise ValueError(f"must not contain control characters (such as NUL); {allowed}")
        return value

    return AfterValidator(check)


def _schema_pattern(forbidden: str, *, non_blank: bool) -> Any:
    """The same rule in the JSON schema; a non-blank value has one character that is not a
    blank (the schema's way of saying what trimming does)."""
    if non_blank:
        pattern = rf"^[^{forbidden}]*[^\s{forbidden}][^{forbidden}]*$"
    else:
        pattern = rf"^[^{forbidden}]*$"
    return Field(json_schema_extra={"pattern": pattern})


_ONE_LINE = _refusing(CONTROL)
_LAID_OUT = _refusing(CONTROL_BUT_LAYOUT)
MAX_PROMPT = 4000
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    _ONE_LINE,
    _schema_pattern(CONTROL, non_blank=True),
]
PromptText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PROMPT),
    _LAID_OUT,
    _schema_pattern(CONTROL_BUT_LAYOUT, non_blank=True),
]
GuidanceText = Annotated[
    str,
    StringConstraints(max_length=1000),
    _LAID_OUT,
    _schema_pattern(CONTROL_BUT_LAYOUT, non_blank=False),
]
ToneText = Annotated[
    str, StringConstraints(max_length=200), _ONE_LINE, _schema_pattern(CONTROL, non_blank=False)
]
FormatText = Annotated[
    str, StringConstraints(max_length=16), _ONE_LINE, _schema_pattern(CONTROL, non_blank=False)
]
MAX_SAMPLES = 16
NotesText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=500),
    _LAID_OUT,
    _schema_pattern(CONTROL_BUT_LAYOUT, non_blank=False),
]
_TEMPLATE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def _template_id(value: str) -> str:
    # refused, not lower-cased: two spellings must never name one template by surprise
    if not _TEMPLATE_ID.fullmatch(value):
        raise ValueError(
            "must be a template id: 1 to 64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit"
        )
    return value


TemplateId = Annotated[
    str,
    AfterValidator(_template_id),
    Field(
        description="the id of a design template: lower-case letters, digits, . _ -",
        json_schema_extra={"pattern": f"^{_TEMPLATE_ID.pattern}$"},
    ),
]


def _model_code(value: str) -> str:
    # refused, not lower-cased: a code names one model of Odoo's catalogue exactly
    if not is_model_code(value):
        raise ValueError(
            "must be a model code of your plan: 1 to 64 lower-case letters, digits, '.', '_' or "
            "'-', starting with a letter or a digit (GET /api/v1/credits lists your plan's models)"
        )
    return value


ModelCode = Annotated[
    str,
    AfterValidator(_model_code),
    Field(
        description="the code of an AI model your plan includes, e.g. creativeflow-advanced-v1",
        json_schema_extra={"pattern": f"^{MODEL_CODE_PATTERN}$"},
    ),
]
# language[-Script][-REGION] in BCP 47's canonical case; other spellings are refused
LOCALE = re.compile(r"[a-z]{2,3}(-[A-Z][a-z]{3})?(-(?:[A-Z]{2}|[0-9]{3}))?")


class CulturalAdaptationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    locale: str = Field(
        description="the audience's locale, BCP 47 in canonical case: ja, ja-JP, zh-Hant-TW...",
        json_schema_extra={"pattern": f"^{LOCALE.pattern}$"},
    )
    notes: NotesText | None = Field(
        None, description="what to adapt for that audience (symbols, colours, customs to avoid)"
    )

    @field_validator("locale")
    @classmethod
    def _canonical_locale(cls, locale: str) -> str:
        if not LOCALE.fullmatch(locale):
            raise ValueError(
                "must be a BCP 47 locale in canonical case, such as ja, ja-JP, zh-Hant-TW or "
                "es-419 (language in lower case, region in upper case)"
            )
        return locale


class BrandElements(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    colors: list[Annotated[str, StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$")]] = Field(
        default_factory=list, max_length=16, description="brand colours as #RRGGBB"
    )
    fonts: list[ShortText] = Field(default_factory=list, max_length=8)
    logo_url: AnyHttpUrl | None = Field(
        None,
        description="an http(s) URL of the brand's logo on a public host: no user information, "
        "no loopback, private or link-local address",
    )
    tone: ToneText | None = None

    @field_validator("logo_url")
    @classmethod
    def _public_logo_only(cls, url: AnyHttpUrl | None) -> AnyHttpUrl | None:
        # n8n fetches the logo: the same rules as the assets it sends back, and no internal host
        if url is not None:
            refusal = asset_url_refusal(str(url), frozenset()) or internal_host_refusal(url.host)
            if refusal:
                raise ValueError(refusal.replace("asset URLs", "the logo URL"))
        return url


class GenerationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "prompt": "A sunlit coffee shop in watercolour, warm tones",
                    "format": "png",
                    "width": 1024,
                    "height": 1024,
                    "samples": 4,
                    "style_guidance": "soft watercolour, no text",
                    "brand_elements": {"colors": ["#FF6600"], "fonts": ["Inter"]},
                    "project_id": "spring-campaign",
                }
            ]
        },
    )

    prompt: PromptText
    format: OutputFormat
    width: Dimension
    height: Dimension
    samples: Annotated[
        int, Field(ge=1, le=MAX_SAMPLES, strict=True), BeforeValidator(_integral)
    ] = 4
    style_guidance: GuidanceText | None = None
    brand_elements: BrandElements | None = None
    project_id: ShortText | None = None
    model: ModelCode | None = Field(
        None,
        description="the AI model to run on, one your plan includes (GET /api/v1/credits lists "
        "them); left out: your plan's default model",
    )
    advanced_model: bool = Field(
        False,
        description="deprecated (use model): true asks for the advanced model "
        "(creativeflow-advanced-v1); ignored when model is given",
        json_schema_extra={"deprecated": True},
    )
    template: TemplateId | None = None
    # JSON gives text: the enums take their values from it (strict mode would want instances)
    tone: Tone | None = Field(None, strict=False, description="the mood of this piece")
    cultural_adaptation: CulturalAdaptationIn | None = None
    target_platform: TargetPlatform | None = Field(
        None, strict=False, description="where the asset will be published"
    )
    webhook_url: AnyHttpUrl | None = Field(
        None,
        description="where to post every event of this request, signed the Standard Webhooks "
        "way (when the service sends webhooks): https on a public host, at most 2048 "
        "characters, no user information",
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_shape(cls, url: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if url is not None:
            if len(str(url)) > MAX_WEBHOOK_URL:
                raise ValueError(f"the webhook URL is longer than {MAX_WEBHOOK_URL} characters")
            if url.username or url.password:
                raise ValueError("the webhook URL must not carry user information")
        return url

    def brief(self) -> CreativeBrief:
        adaptation = self.cultural_adaptation
        return CreativeBrief(
            template=self.template,
            tone=self.tone,
            cultural_adaptation=(
                CulturalAdaptation(adaptation.locale, adaptation.notes or None)
                if adaptation
                else None
            ),
            target_platform=self.target_platform,
        )


class SampleSelection(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sample_id: ShortText


class Regeneration(BaseModel):
    """A regeneration takes no parameters: the new round has as many samples as the request
    first asked for, from the same prompt. Any field is refused rather than ignored, so nobody
    pays for a change that would not happen."""

    model_config = ConfigDict(extra="forbid", strict=True)


class AssetView(BaseModel):
    id: str
    url: str = Field(
        description="where to download it now: a signed link to our stored copy once it is "
        "stored (url_source storage, valid until url_expires_at: read the request again for a "
        "fresh one), else the provider's URL (url_source provider), which expires on its own"
    )
    url_source: Literal["storage", "provider"] = "provider"
    url_expires_at: datetime | None = Field(
        None, description="when a signed link to our copy stops working; null for a provider URL"
    )
    checksum_sha256: str | None = Field(
        None, description="SHA-256 (hex) of the stored copy's bytes; null until stored"
    )
    byte_size: int | None = Field(None, description="size of the stored copy; null until stored")
    width: int | None = None
    height: int | None = None
    format: str | None = None

    @classmethod
    def of(cls, sample: Sample, link: AssetLink) -> AssetView:
        """``sample`` as users follow it: ``link`` is ``link_for``'s (our copy, or the
        provider's URL with nothing more)."""
        return cls(
            id=sample.id,
            url=link.url,
            url_source="storage" if link.stored else "provider",
            url_expires_at=link.expires_at,
            checksum_sha256=link.checksum_sha256,
            byte_size=link.byte_size,
            width=sample.width,
            height=sample.height,
            format=sample.format,
        )


class FailureView(BaseModel):
    category: str
    code: str
    message: str


class TransitionView(BaseModel):
    status: Status
    at: datetime


class ChargeView(BaseModel):
    """One paid step of the request and what it cost."""

    action: str = Field(
        description="the paid step: samples, final (final-2... after a refunded final), "
        "regeneration-1, regeneration-2..."
    )
    state: ChargeState = Field(
        description="pending or unknown while Odoo's answer is awaited; refused: nothing "
        "charged; charged; refund_pending; refunded"
    )
    charged: int = Field(description="credits debited for this step")
    refunded: int = Field(description="credits given back for this step")

    @classmethod
    def of(cls, charge: StageCharge) -> ChargeView:
        return cls(
            action=charge.action,
            state=charge.state,
            charged=charge.charged,
            refunded=charge.refunded,
        )


class CulturalAdaptationView(BaseModel):
    locale: str
    notes: str | None


class GenerationView(BaseModel):
    id: str
    status: Status
    prompt: str
    format: str
    width: int
    height: int
    samples_count: int
    style_guidance: str | None
    brand_elements: dict[str, Any] | None
    project_id: str | None
    template: str | None
    tone: Tone | None
    cultural_adaptation: CulturalAdaptationView | None
    target_platform: TargetPlatform | None
    model: str | None = Field(
        description="the AI model the request runs on, as Odoo granted it with the first "
        "debit; before that, the one asked for (null: the plan's default)"
    )
    regeneration_count: int
    samples: list[AssetView]
    selected_sample_id: str | None
    final_asset: AssetView | None
    failure: FailureView | None
    deadline_at: datetime | None
    created_at: datetime
    updated_at: datetime | None
    history: list[TransitionView]
    charges: list[ChargeView] = Field(description="what each paid step charged and refunded")
    credits_charged: int = Field(description="credits debited for this request in all")
    credits_refunded: int = Field(description="credits given back for this request in all")

    @classmethod
    def of(cls, request: GenerationRequest) -> GenerationView:
        return cls(
            id=request.id,
            status=request.status,
            prompt=request.prompt,
            format=request.format,
            width=request.width,
            height=request.height,
            samples_count=request.samples_count,
            style_guidance=request.style_guidance,
            brand_elements=request.brand_elements,
            project_id=request.project_id,
            template=request.brief.template,
            tone=request.brief.tone,
            cultural_adaptation=(
                CulturalAdaptationView(
                    locale=request.brief.cultural_adaptation.locale,
                    notes=request.brief.cultural_adaptation.notes,
                )
                if request.brief.cultural_adaptation
                else None
            ),
            target_platform=request.brief.target_platform,
            model=request.model,
            regeneration_count=request.regeneration_count,
            samples=[
                AssetView.of(s, link_for(request.links, AssetRole.SAMPLE, s))
                for s in request.samples
            ],
            selected_sample_id=request.selected_sample_id,
            final_asset=(
                AssetView.of(
                    request.final_asset,
                    link_for(request.links, AssetRole.FINAL, request.final_asset),
                )
                if request.final_asset
                else None
            ),
            failure=(
                FailureView(
                    category=request.failure.category.value,
                    code=request.failure.code,
                    message=request.failure.message,
                )
                if request.failure
                else None
            ),
            deadline_at=request.deadline_at,
            created_at=request.created_at,
            updated_at=request.updated_at,
            history=[TransitionView.model_validate(h) for h in request.history],
            charges=[ChargeView.of(c) for c in request.charges],
            credits_charged=sum(c.charged for c in request.charges),
            credits_refunded=sum(c.refunded for c in request.charges),
        )


class GenerationPage(BaseModel):
    items: list[GenerationView]
    total: int
    limit: int
    offset: int


class TierView(BaseModel):
    code: str
    name: str


class LimitsView(BaseModel):
    formats: list[str]
    max_width: int
    max_height: int
    max_samples_per_request: int
    models: list[str] = Field(description="the codes of the AI models your plan includes")
    default_model: str | None = Field(description="the model a request that names none runs on")
    advanced_models: bool = Field(
        description="deprecated, read models: whether models holds the advanced model",
        json_schema_extra={"deprecated": True},
    )
    max_requests_in_flight: int


class PricesView(BaseModel):
    sample: int
    final: int
    regeneration_sample: int


class CreditsView(BaseModel):
    user_id: str
    tier: TierView
    limits: LimitsView
    prices: PricesView
    balance: int


class QuotedCostsView(BaseModel):
    samples: int = Field(description="charged when the request is submitted")
    final: int = Field(description="charged when a sample is selected for the final asset")
    regeneration: int = Field(description="charged for each new round of as many samples")


class QuoteRefusalView(BaseModel):
    code: str = Field(description="`tier_forbids` or `insufficient_credits`, as a submit's problem")
    reason: str | None = Field(
        description="with `tier_forbids`: the plan's rule the request breaks"
    )
    message: str = Field(description="what the user can do about it")


class QuoteView(BaseModel):
    allowed: bool = Field(
        description="whether a submit of this request would be accepted now: the plan allows "
        "it (the cap on unfinished requests included) and the balance covers the samples"
    )
    refusal: QuoteRefusalView | None = Field(description="why not, when not allowed")
    tier: str
    costs: QuotedCostsView
    balance: int
    affordable: bool = Field(description="whether the balance covers the samples")
    model: str | None = Field(
        description="the AI model the request would run on; null when your plan does not "
        "include the one asked for"
    )
    models: list[str] = Field(description="the codes of the AI models your plan includes")
    default_model: str | None = Field(description="the model a request that names none runs on")

    @classmethod
    def of(cls, quote: Quote) -> QuoteView:
        refused = quote.refusal()
        return cls(
            allowed=refused is None,
            refusal=None
            if refused is None
            else QuoteRefusalView(
                code=refused.code,
                reason=quote.reason,
                message=refused.public_detail,
            ),
            tier=quote.tier_code,
            costs=QuotedCostsView(
                samples=quote.prices.samples,
                final=quote.prices.final,
                regeneration=quote.prices.regeneration,
            ),
            balance=quote.balance,
            affordable=quote.affordable,
            model=quote.model,
            models=list(quote.models),
            default_model=quote.default_model,
        )


class CreditMovementView(BaseModel):
    id: int = Field(description="the Odoo ledger entry")
    operation: Literal["debit", "refund", "adjustment"]
    change: int = Field(description="what it did to the balance: negative for a debit")
    balance_after: int
    request_id: str | None = Field(description="the generation request it paid or refunded")
    action: str | None = Field(description="the paid step: samples, final, regeneration-<n>...")
    reason: str | None
    model: str | None = Field(
        description="the AI model the movement paid for; null for adjustments"
    )
    created_at: datetime

    @classmethod
    def of(cls, entry: LedgerEntry) -> CreditMovementView:
        return cls(
            id=entry.id,
            operation=entry.operation,  # type: ignore[arg-type]
            change=-entry.amount if entry.operation == "debit" else entry.amount,
            balance_after=entry.balance_after,
            request_id=entry.request_id,
            action=entry.action,
            reason=entry.reason,
            model=entry.model,
            created_at=entry.created,
        )


class CreditHistoryView(BaseModel):
    items: list[CreditMovementView]
    limit: int
    offset: int
    has_more: bool


# --- n8n callbacks ---------------------------------------------------------------------------

AssetUrl = Annotated[str, StringConstraints(max_length=2048)]
# the ids this service gave out: printable ASCII, no blank
CallbackId = Annotated[str, StringConstraints(min_length=1, max_length=36, pattern=r"^[!-~]+$")]


def _drop(forbidden: str) -> Any:
    found = re.compile(f"[{forbidden}]")

    def drop(value: Any) -> Any:
        return found.sub("", value) if isinstance(value, str) else value

    return drop


ASSET_HOSTS_CONTEXT = "asset_url_hosts"
"""Validation context key: the storage hosts asset URLs may point at (empty or absent: any)."""


def asset_rules(allowed_hosts: frozenset[str]) -> dict[str, frozenset[str]]:
    """The validation context of a callback body: ``CallbackPayload.model_validate(data,
    context=asset_rules(settings.asset_url_hosts))``."""
    return {ASSET_HOSTS_CONTEXT: allowed_hosts}


def asset_url_refusal(url: str, allowed_hosts: frozenset[str]) -> str | None:
    """Why an asset URL from n8n is refused, or ``None``. The URL ends up in clients' hands, so
    it must be plain http(s) on a storage host: no userinfo (``https://ok.example@evil.example/``
    is a link to evil.example), no backslash or blank that browsers and parsers read differently,
    and, when hosts are listed, exactly one of them. The reason never quotes the URL."""
    if any(c == "\\" or c.isspace() or not c.isprintable() for c in url):
        return "asset URLs must not contain blanks, control characters or backslashes"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        return "asset URLs must be valid http(s) URLs"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "asset URLs must be http(s) URLs with a host"
    if "@" in parts.netloc:
        return "asset URLs must not carry user information"
    if allowed_hosts and parts.hostname not in allowed_hosts:
        return "asset URLs must point at an allowed storage host"
    return None


MAX_WEBHOOK_URL = 2048


def webhook_url_refusal(url: str, *, allow_private_hosts: bool) -> str | None:
    """Why a client's webhook URL is refused where it will be posted to: https on a public host
    (the sender checks again, at each post, where the name resolves)."""
    if allow_private_hosts:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "the webhook URL must be an https URL"
    refusal = internal_host_refusal(parts.hostname)
    return refusal.replace("asset URLs", "the webhook URL") if refusal else None


def internal_host_refusal(host: str | None) -> str | None:
    """Why a host is not one a URL given to a fetcher may name: a loopback, private, link-local
    or otherwise non-public address, or a local name."""
    if not host:
        return "asset URLs must be http(s) URLs with a host"
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        return "asset URLs must not point at a local host name"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None  # a public-looking name: where it resolves is the fetcher's to check
    if not address.is_global:
        return "asset URLs must not point at a loopback, private or link-local address"
    return None


class CallbackAsset(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: ShortText
    url: AssetUrl
    width: int | None = Field(None, ge=1, le=65536)
    height: int | None = Field(None, ge=1, le=65536)
    format: FormatText | None = None

    @field_validator("url")
    @classmethod
    def _storage_url_only(cls, url: str, info: ValidationInfo) -> str:
        context = info.context if isinstance(info.context, dict) else {}
        refusal = asset_url_refusal(url, frozenset(context.get(ASSET_HOSTS_CONTEXT, ())))
        if refusal:
            raise ValueError(refusal)
        return url

    def to_sample(self) -> Sample:
        return Sample(
            id=self.id, url=self.url, width=self.width, height=self.height, format=self.format
        )


class CallbackError(BaseModel):
    model_config = ConfigDict(extra="allow")

    category: Literal["platform", "content_policy"] = "platform"
    # what n8n says of a failure is kept, not refused: a refusal would lose the result, and the
    # user would wait for the deadline. Characters that cannot be stored are dropped.
    code: Annotated[
        str, BeforeValidator(_drop(CONTROL)), StringConstraints(min_length=1, max_length=64)
    ] = "unknown"
    message: Annotated[
        str, BeforeValidator(_drop(CONTROL_BUT_LAYOUT)), StringConstraints(max_length=2000)
    ] = ""

    @model_validator(mode="after")
    def _storable_extras(self) -> CallbackError:
        # extra keys are only logged, but a log line must not carry NUL either
        if self.model_extra:
            for key, value in list(self.model_extra.items()):
                if isinstance(value, str):
                    self.model_extra[key] = _drop(CONTROL_BUT_LAYOUT)(value)
        return self


class CallbackPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: Literal["samples_ready", "final_ready", "failed"] | None = None
    # ids are UUIDs (36 characters), as the tracking tables store them
    job_id: CallbackId
    request_id: CallbackId
    samples: list[CallbackAsset] = Field(default_factory=list, max_length=MAX_SAMPLES)
    asset: CallbackAsset | None = None
    error: CallbackError | None = None


class CallbackAck(BaseModel):
    outcome: str
    job_id: str
