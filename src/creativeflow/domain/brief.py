"""The creative brief of a request beyond its prompt: the template to start from, the tone, hints
for cultural adaptation and the platform the asset is for. n8n hands it to the provider; the
service checks it, stores it and shows it, and never interprets it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Tone(enum.StrEnum):
    NEUTRAL = "neutral"
    PROFESSIONAL = "professional"
    FRIENDLY = "friendly"
    PLAYFUL = "playful"
    BOLD = "bold"
    ELEGANT = "elegant"
    MINIMAL = "minimal"
    LUXURIOUS = "luxurious"
    WARM = "warm"
    DRAMATIC = "dramatic"


class TargetPlatform(enum.StrEnum):
    INSTAGRAM_FEED = "instagram_feed"
    INSTAGRAM_STORY = "instagram_story"
    FACEBOOK_FEED = "facebook_feed"
    X_POST = "x_post"
    LINKEDIN_POST = "linkedin_post"
    TIKTOK = "tiktok"
    PINTEREST_PIN = "pinterest_pin"
    YOUTUBE_THUMBNAIL = "youtube_thumbnail"
    WEB_BANNER = "web_banner"
    PRINT = "print"


@dataclass(frozen=True, slots=True)
class CulturalAdaptation:
    locale: str  # a BCP 47 tag in its canonical case: ja, ja-JP, zh-Hant-TW, es-419
    notes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"locale": self.locale, "notes": self.notes}


@dataclass(frozen=True, slots=True)
class CreativeBrief:
    template: str | None = None
    tone: Tone | None = None
    cultural_adaptation: CulturalAdaptation | None = None
    target_platform: TargetPlatform | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field, None when not given: what the job message and the tracking row carry."""
        return {
            "template": self.template,
            "tone": self.tone.value if self.tone else None,
            "cultural_adaptation": (
                self.cultural_adaptation.to_dict() if self.cultural_adaptation else None
            ),
            "target_platform": self.target_platform.value if self.target_platform else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CreativeBrief:
        if not data:
            return cls()
        adaptation = data.get("cultural_adaptation")
        return cls(
            template=data.get("template"),
            tone=Tone(data["tone"]) if data.get("tone") else None,
            cultural_adaptation=(
                CulturalAdaptation(adaptation["locale"], adaptation.get("notes"))
                if adaptation
                else None
            ),
            target_platform=(
                TargetPlatform(data["target_platform"]) if data.get("target_platform") else None
            ),
        )
