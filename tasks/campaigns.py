"""The campaign catalog: YAML files under ``campaigns/`` validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.enums import Channel, MessageKind

CampaignName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class Audience(BaseModel):
    """Who a campaign is for, over the customer profile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days_since_last_order: tuple[int, int] = Field(description="Inclusive range of days since the last purchase.")

    @model_validator(mode="after")
    def _ordered(self) -> Audience:
        low, high = self.days_since_last_order
        if not 0 <= low <= high:
            raise ValueError("days_since_last_order must be [low, high] with 0 <= low <= high")
        return self


class Offer(BaseModel):
    """A personal coupon attached to a message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    coupon_prefix: str = Field(pattern=r"^[A-Z0-9]{2,12}$")
    percent_off: int = Field(ge=1, le=90)
    valid_days: int = Field(ge=1, le=365)


class Campaign(BaseModel):
    """One campaign: trigger audience, channels, template, offer and priority."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: CampaignName
    kind: MessageKind
    channels: tuple[Channel, ...] = Field(min_length=1)
    template: str
    priority: int = Field(ge=0, le=100, description="Higher wins the frequency budget.")
    audience: Audience
    send_hour_local: int = Field(10, ge=0, le=23, description="Hour of day, customer's time, to send at.")
    offer: Offer | None = None
    step: int = 1
    holdout_share: float = Field(0.0, ge=0.0, lt=1.0, description="Share of the audience held out to measure uplift.")
    max_delay_days: int = Field(
        0, ge=0, le=365, description="How late a message may still go out: deferrals and backfills past it are skipped."
    )


class CatalogError(ValueError):
    """A campaign file is invalid; the message names the file and the field."""


def load_campaign(path: Path) -> Campaign:
    """Load and validate one campaign YAML file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Campaign.model_validate(raw)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise CatalogError(f"{path}: {where}: {first['msg']}") from exc


def load_catalog(folder: Path) -> dict[str, Campaign]:
    """Load every campaign YAML in a folder, keyed by name."""
    campaigns = [load_campaign(p) for p in sorted(folder.glob("*.yaml")) if p.name != "segments.yaml"]
    return {c.name: c for c in campaigns}
