"""The campaign catalog: YAML files under ``campaigns/`` validated by pydantic.

A campaign is a trigger (what makes a customer due, and on which date: the
*occurrence*), steps (days after the occurrence a message goes out, each with
an optional audience, offer and content variant), an audience over the
customer profile, channels, a template, a priority for the frequency budget,
a holdout share and how late a message may still go out. ``tasks/plan/triggers.py``
turns each trigger into occurrences; ``tasks/plan/planner.py`` turns them into plan rows.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.kernel.enums import Channel, MailingTopic, MessageKind, OrderStatus
from tasks.kernel.errors import CatalogError

CampaignName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
MonthDay = Annotated[str, Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$", description="MM-DD")]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Offer(_Frozen):
    """A personal coupon: one code per customer per occurrence, the same on every step and channel that carries it.

    Valid from the first step that carries it until ``valid_days`` after the last one, and at least
    ``valid_days`` after the day a message carrying it really goes out (a late step extends it, never
    ships it expired). ``valid_days: 0``: through the last step's day, fixed by the occasion: a step
    that would go out after that is skipped (``coupon_expired``).
    """

    coupon_prefix: str = Field(pattern=r"^[A-Z0-9]{2,12}$")
    percent_off: int = Field(ge=1, le=90)
    valid_days: int = Field(ge=0, le=365)


class Step(_Frozen):
    """One message of a campaign, ``offset_days`` after the occurrence (negative: before it)."""

    step: int = Field(ge=1, le=20)
    offset_days: int = Field(0, ge=-60, le=365)
    audience: str | None = Field(None, description="An extra condition over the profile for this step only.")
    offer: Offer | None = Field(None, description="Overrides the campaign's offer for this step.")
    variant: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]*$", description="A name the template branches on (greeting, reminder, ...)."
    )
    gift_categories: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = Field(
        (),
        description="Product categories (as in the products table) this step shows gift ideas from, instead of the "
        "campaign's products: in-stock products of the day's catalog, newest first, the categories taking turns. "
        "For a message about a gift to someone else (a holiday reminder), where the customer's own picks are no gift.",
    )

    @field_validator("gift_categories")
    @classmethod
    def _distinct_categories(cls, categories: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(categories)) != len(categories):
            raise ValueError("a category is listed twice")
        return categories


# --- triggers: what makes a customer due, and the occurrence date ---------------------------------------------


class LapseTrigger(_Frozen):
    """Lapsed: the occurrence is the day ``days`` after the last purchase (one per lapse); buying again ends it."""

    type: Literal["lapse"]
    days: int = Field(ge=1, le=3650)


class OverdueTrigger(_Frozen):
    """Overdue by the customer's own rhythm: the occurrence is the first day the days since the last purchase
    exceed ``factor`` x the rhythm, the median gap between the customer's purchase days (at least
    ``min_rhythm_days``). Only for customers with two purchase days or more (one gap is a rhythm, no gap is
    none); one per gap, and buying again ends it. An occurrence more than ``max_days`` after the last purchase
    is none (later, the lapse speaks)."""

    type: Literal["overdue"]
    factor: float = Field(gt=1.0, le=10.0, description="How many rhythms without a purchase make a customer overdue.")
    min_rhythm_days: int = Field(
        0, ge=0, le=365, description="A rhythm shorter than this counts as this (a weekly buyer is not chased daily)."
    )
    max_days: int | None = Field(None, ge=1, le=3650, description="Days after the last purchase the occurrence may be.")


class BirthdayTrigger(_Frozen):
    """The birthday (29 February: 28 February in other years, as the profile counts it)."""

    type: Literal["birthday"]


class HolidayTrigger(_Frozen):
    """A holiday by the customer's country: configured month-day per ISO country; ``default`` for the rest."""

    type: Literal["holiday"]
    dates: dict[str, MonthDay] = Field(min_length=1, description='{"RU": "03-08", "PL": "03-08", "default": "03-08"}')

    @field_validator("dates")
    @classmethod
    def _countries(cls, dates: dict[str, str]) -> dict[str, str]:
        for country, month_day in dates.items():
            if country != "default" and not (len(country) == 2 and country.isalpha() and country.isupper()):
                raise ValueError(f"{country!r} is not an ISO-2 country code (or 'default')")
            month, day = (int(x) for x in month_day.split("-"))
            date(2024, month, day)  # a leap year: 02-29 is allowed, 02-30 is not
        return dates


class OrderTrigger(_Frozen):
    """An order reached a status (``first_only``: the customer's first order only); occurrence = that day."""

    type: Literal["order"]
    status: OrderStatus
    first_only: bool = False
    once_in_days: int | None = Field(
        None,
        ge=1,
        le=3650,
        description="At most one occurrence per customer in this many days: an order reaching the status sooner "
        "after the last one that counted is passed over (the survey: never asked twice in 90 days).",
    )


class SignupTrigger(_Frozen):
    """Signed up: the occurrence is the customer's local day of sign-up (``customers.created_at``).

    ``never_ordered``: only customers who have placed no order at all (whatever became of it) by the day's data,
    so a first order (the one ``welcome`` fires on, even if cancelled later) ends it."""

    type: Literal["signup"]
    never_ordered: bool = False


class IncidentTrigger(_Frozen):
    """A bad experience (late delivery, low rating, return, cancellation); occurrence = its day."""

    type: Literal["incident"]


class ReplenishmentTrigger(_Frozen):
    """A regularly bought product is due again; occurrence = the due day."""

    type: Literal["replenishment"]


class CartTrigger(_Frozen):
    """Products added to the cart and not ordered (nor removed) since; occurrence = the day of the add.

    The step's offset says how long the cart is left alone first (``abandoned_cart``: one day)."""

    type: Literal["cart"]


class ScheduleTrigger(_Frozen):
    """A calendar: every ``weekday``, or every month on ``month_day`` (1-28); occurrence = that date."""

    type: Literal["schedule"]
    weekday: Weekday | None = None
    month_day: int | None = Field(None, ge=1, le=28)
    every_weeks: int = Field(
        1,
        ge=1,
        le=52,
        description="With weekday: every n-th week (ISO week number % n == 0; a year of 53 ISO weeks makes one gap longer).",
    )

    @model_validator(mode="after")
    def _one(self) -> ScheduleTrigger:
        if (self.weekday is None) == (self.month_day is None):
            raise ValueError("a schedule needs exactly one of weekday or month_day")
        return self


class PointsTrigger(_Frozen):
    """Loyalty points: ``statement`` on the first of the month with a balance, ``expiry`` days before points lapse
    (without the shop's spending data: the points earned in the month, and the points earned on the lapsing day)."""

    type: Literal["points"]
    event: Literal["statement", "expiry"]


class OrderStatusTrigger(_Frozen):
    """Order updates (``flows/order_updates.py``, every few minutes): each status change, and a delay notice
    when an order is still undelivered after its promised date. Not planned by the daily run."""

    type: Literal["order_status"]
    statuses: tuple[OrderStatus, ...] = Field(min_length=1)
    delay_notice: bool = True


class BackInStockTrigger(_Frozen):
    """A product the customer viewed, carted or wishlisted while it was out of stock is back
    (``flows/order_updates.py``). Not planned by the daily run."""

    type: Literal["back_in_stock"]
    signals: tuple[Literal["view", "cart_add", "wishlist_add"], ...] = ("view", "cart_add", "wishlist_add")
    lookback_days: int = Field(30, ge=1, le=365, description="Interest older than this does not count.")


class SurveyTrigger(_Frozen):
    """An answer to the after-delivery survey with a score in ``[min_score, max_score]`` (the promoters: 9-10);
    occurrence = the customer's local day of the answer, detail = the order answered about. Detractors need no
    trigger: their answer is an incident (``low_score``), and service recovery writes to them."""

    type: Literal["survey"]
    min_score: int = Field(ge=0, le=10)
    max_score: int = Field(10, ge=0, le=10)


class AdhocTrigger(_Frozen):
    """A one-off campaign a marketer starts (``flows/adhoc_campaign.py``): its audience is all there is."""

    type: Literal["adhoc"]


# Triggers outside the daily plan: order updates as they happen, and one-off campaigns.
STREAM_TRIGGERS = (OrderStatusTrigger, BackInStockTrigger, AdhocTrigger)

Trigger = Annotated[
    LapseTrigger
    | OverdueTrigger
    | BirthdayTrigger
    | HolidayTrigger
    | OrderTrigger
    | SignupTrigger
    | IncidentTrigger
    | ReplenishmentTrigger
    | CartTrigger
    | ScheduleTrigger
    | PointsTrigger
    | OrderStatusTrigger
    | BackInStockTrigger
    | SurveyTrigger
    | AdhocTrigger,
    Field(discriminator="type"),
]


class Campaign(_Frozen):
    """One campaign: trigger, steps, audience, channels, template, offer, priority, holdout and lateness."""

    name: CampaignName
    description: str = ""
    kind: MessageKind
    channels: tuple[Channel, ...] = Field(min_length=1)
    template: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    priority: int = Field(ge=0, le=100, description="Higher wins the frequency budget.")
    trigger: Trigger
    steps: tuple[Step, ...] = Field((Step(step=1),), min_length=1)
    audience: str | None = Field(None, description="A condition over the profile, as in campaigns/segments.yaml.")
    send_hour_local: int = Field(10, ge=0, le=23, description="Hour of day, customer's time, to send at.")
    offer: Offer | None = None
    products: Literal["picks", "new_arrivals", "none"] = Field(
        "picks",
        description="Products the message shows: the customer's picks, the newest in-stock arrivals, or none. "
        "Cart and replenishment triggers show their own products.",
    )
    stop_when_redeemed: bool = Field(False, description="Later steps are skipped once the customer used the coupon.")
    pause_promotions_days: int = Field(
        0, ge=0, le=365, description="After this campaign reaches a customer, other promotions pause this many days."
    )
    holdout_share: float = Field(0.0, ge=0.0, lt=1.0, description="Share of the audience held out to measure uplift.")
    max_delay_days: int = Field(
        0, ge=0, le=365, description="How late a message may still go out: deferrals and backfills past it are skipped."
    )
    survey: bool = Field(
        False,
        description="The message asks for a 0-10 score about the order: it carries eleven signed answer links "
        "(``survey_urls``), and LOYALTY_SURVEY_IS_SERVICE may make it a service message.",
    )
    topic: MailingTopic | None = Field(
        None,
        description="What the campaign is about on the customer's preferences page, where a topic can be turned off. "
        "Default from the trigger: birthday and holiday greetings are birthday_holidays; cart, back-in-stock and "
        "replenishment reminders personal_picks; other marketing news_and_sales. Transactional is always service.",
    )
    enabled: bool = True

    @property
    def mailing_topic(self) -> MailingTopic:
        """The topic the preference gate checks: order and service messages are ``service`` (never turned off)."""
        if self.kind is MessageKind.TRANSACTIONAL:
            return MailingTopic.SERVICE
        if self.topic is not None:
            return self.topic
        if isinstance(self.trigger, BirthdayTrigger | HolidayTrigger):
            return MailingTopic.BIRTHDAY_HOLIDAYS
        if isinstance(self.trigger, CartTrigger | BackInStockTrigger | ReplenishmentTrigger):
            return MailingTopic.PERSONAL_PICKS
        return MailingTopic.NEWS_AND_SALES

    @model_validator(mode="after")
    def _steps(self) -> Campaign:
        numbers = [s.step for s in self.steps]
        if len(set(numbers)) != len(numbers):
            raise ValueError("steps: step numbers must be unique")
        if [s.offset_days for s in self.steps] != sorted(s.offset_days for s in self.steps):
            raise ValueError("steps: offsets must not decrease from one step to the next")
        if self.kind is MessageKind.MARKETING and self.topic is MailingTopic.SERVICE:
            raise ValueError("topic: a marketing campaign cannot be 'service' (customers cannot turn service off)")
        if self.kind is MessageKind.TRANSACTIONAL and self.holdout_share:
            raise ValueError("a transactional campaign has no holdout (nobody is held out of a service message)")
        if self.kind is MessageKind.TRANSACTIONAL and any(s.offer for s in self.steps):
            raise ValueError(
                "a transactional campaign's offer is campaign-wide (its coupon goes to those who accept offers)"
            )
        return self

    def on_the_day(self, step: Step) -> bool:
        """A greeting on its occasion (a birthday or holiday step with offset 0): never sent on a later day."""
        return isinstance(self.trigger, BirthdayTrigger | HolidayTrigger) and step.offset_days == 0

    def last_day(self, step: Step) -> int:
        """How many days after its due day a step may still go out: 0 for a greeting on its occasion."""
        return 0 if self.on_the_day(step) else self.max_delay_days

    def step_offer(self, step: Step) -> Offer | None:
        """The offer a step carries: its own, else the campaign's."""
        return step.offer or self.offer

    def offer_window(self, offer: Offer) -> tuple[int, int]:
        """Days from the occurrence a coupon is valid when every step goes out on its day: from its first carrying
        step to ``valid_days`` after the last (``tasks/plan/offers.py`` counts from the real send day)."""
        offsets = [s.offset_days for s in self.steps if self.step_offer(s) == offer]
        return min(offsets), max(offsets) + offer.valid_days

    @property
    def offsets(self) -> tuple[int, int]:
        """The earliest and latest step offsets."""
        return self.steps[0].offset_days, self.steps[-1].offset_days


def load_campaign(path: Path) -> Campaign:
    """Load and validate one campaign YAML file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Campaign.model_validate(raw)
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not UTF-8 text (save the file as UTF-8)") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise CatalogError(f"{path}: {where}: {first['msg']}") from exc


def survey_kind(catalog: dict[str, Campaign], is_service: bool) -> dict[str, Campaign]:
    """The catalog with survey campaigns made service messages when the shop says so (LOYALTY_SURVEY_IS_SERVICE).

    A service message needs no marketing consent and takes no room in the frequency budget; by default a survey
    is marketing, as its YAML declares."""
    if not is_service:
        return catalog
    return {n: c.model_copy(update={"kind": MessageKind.TRANSACTIONAL}) if c.survey else c for n, c in catalog.items()}


def daily_campaigns(catalog: dict[str, Campaign]) -> dict[str, Campaign]:
    """The campaigns the daily run plans (not order updates, not one-off campaigns)."""
    return {n: c for n, c in catalog.items() if not isinstance(c.trigger, STREAM_TRIGGERS)}


def load_catalog(folder: Path, *, include_disabled: bool = False) -> dict[str, Campaign]:
    """Load every campaign YAML in a folder, keyed by name; a name used twice is an error."""
    catalog: dict[str, Campaign] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "segments.yaml":
            continue
        campaign = load_campaign(path)
        if campaign.name in catalog:
            raise CatalogError(f"{path}: name: {campaign.name!r} is already used by another campaign file")
        if campaign.enabled or include_disabled:
            catalog[campaign.name] = campaign
    return catalog
