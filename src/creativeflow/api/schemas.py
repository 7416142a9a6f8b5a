"""What the API accepts and answers. Bounds live here so bad input is refused before anything is
stored or charged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from creativeflow.domain.model import GenerationRequest, Sample
from creativeflow.domain.states import Status

OutputFormat = Literal["png", "jpeg", "webp", "tiff"]
Dimension = Annotated[int, Field(ge=64, le=8192, strict=True)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
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
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PROMPT)
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
            id=sample.id, url=sample.url, width=sample.width, height=sample.height, format=sample.format
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


class CallbackAsset(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: ShortText
    url: AssetUrl
    width: int | None = Field(None, ge=1, le=65536)
    height: int | None = Field(None, ge=1, le=65536)
    format: Annotated[str, StringConstraints(max_length=16)] | None = None

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError("asset URLs must be http(s)")
        return url

    def to_sample(self) -> Sample:
        return Sample(id=self.id, url=self.url, width=self.width, height=self.height, format=self.format)


class CallbackError(BaseModel):
    model_config = ConfigDict(extra="allow")

    category: Literal["platform", "content_policy"] = "platform"
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "unknown"
    message: Annotated[str, StringConstraints(max_length=2000)] = ""


class CallbackPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: Literal["samples_ready", "final_ready", "failed"] | None = None
    job_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    samples: list[CallbackAsset] = Field(default_factory=list, max_length=MAX_SAMPLES)
    asset: CallbackAsset | None = None
    error: CallbackError | None = None


class CallbackAck(BaseModel):
    outcome: str
    job_id: str
