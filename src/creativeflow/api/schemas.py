"""What the API accepts and answers. Bounds live here so bad input is refused before anything is
stored or charged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from creativeflow.domain.model import GenerationRequest, Sample
from creativeflow.domain.states import Status

OutputFormat = Literal["png", "jpeg", "webp", "tiff"]
Dimension = Annotated[int, Field(ge=64, le=8192, strict=True)]
# the pattern says in the schema what trimming does: a blank string is not a value
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"\S")
]
MAX_PROMPT = 4000
MAX_SAMPLES = 16


class BrandElements(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    colors: list[Annotated[str, StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$")]] = Field(
        default_factory=list, max_length=16, description="brand colours as #RRGGBB"
    )
    fonts: list[ShortText] = Field(default_factory=list, max_length=8)
    logo_url: AnyHttpUrl | None = Field(None, description="an http(s) URL of the brand's logo")
    tone: Annotated[str, StringConstraints(max_length=200)] | None = None


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

    prompt: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=MAX_PROMPT, pattern=r"\S"
        ),
    ]
    format: OutputFormat
    width: Dimension
    height: Dimension
    samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES, strict=True)] = 4
    style_guidance: Annotated[str, StringConstraints(max_length=1000)] | None = None
    brand_elements: BrandElements | None = None
    project_id: ShortText | None = None
    advanced_model: bool = Field(
        False, description="ask for the advanced model; the tier must allow it"
    )


class SampleSelection(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sample_id: ShortText


class AssetView(BaseModel):
    id: str
    url: str
    width: int | None = None
    height: int | None = None
    format: str | None = None

    @classmethod
    def of(cls, sample: Sample) -> AssetView:
        return cls(
            id=sample.id,
            url=sample.url,
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
    model: str | None
    regeneration_count: int
    samples: list[AssetView]
    selected_sample_id: str | None
    final_asset: AssetView | None
    failure: FailureView | None
    deadline_at: datetime | None
    created_at: datetime
    updated_at: datetime | None
    history: list[TransitionView]

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
            model=request.model,
            regeneration_count=request.regeneration_count,
            samples=[AssetView.of(s) for s in request.samples],
            selected_sample_id=request.selected_sample_id,
            final_asset=AssetView.of(request.final_asset) if request.final_asset else None,
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
    advanced_models: bool
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


# --- n8n callbacks ---------------------------------------------------------------------------

AssetUrl = Annotated[str, StringConstraints(max_length=2048)]

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


class CallbackAsset(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: ShortText
    url: AssetUrl
    width: int | None = Field(None, ge=1, le=65536)
    height: int | None = Field(None, ge=1, le=65536)
    format: Annotated[str, StringConstraints(max_length=16)] | None = None

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
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "unknown"
    message: Annotated[str, StringConstraints(max_length=2000)] = ""


class CallbackPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: Literal["samples_ready", "final_ready", "failed"] | None = None
    # ids are UUIDs (36 characters), as the tracking tables store them
    job_id: Annotated[str, StringConstraints(min_length=1, max_length=36)]
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=36)]
    samples: list[CallbackAsset] = Field(default_factory=list, max_length=MAX_SAMPLES)
    asset: CallbackAsset | None = None
    error: CallbackError | None = None


class CallbackAck(BaseModel):
    outcome: str
    job_id: str
