"""Ad-hoc campaigns: a marketer's one-off send, from the request to the plan, the preview and the summary.

A request (``AdhocRequest``, the Prefect UI form) names an audience (a segment of
``campaigns/segments.yaml``, a choice in the form, or an expression over the profile), a template (a
choice of ``templates/``) or the email's own words (``email_copy``: a subject and a Markdown body per
language, rendered by ``tasks/render/markdown_copy.py``), channels and an optional offer. It becomes a one-step ``Campaign`` called ``adhoc_<name>`` whose occurrence is the
day (``as_of``), so its idempotency keys are ``adhoc_<name>/1/<channel>/<customer>/<as_of>``: a
second run of the same campaign on the same day sends nothing twice.

The plan goes through the daily run's gates (contact, consent, suppression, holdout, quiet hours,
pause, the frequency budget, the ledger); the budget also counts what the day's daily run and the
other ad-hoc campaigns already plan to send today, and ranks the campaign by the request's
``priority`` (default 50): it keeps room for a daily step of higher priority due on the coming days
(``reserved``), as the daily run's messages do, and takes it ahead of a lower one. A send time that
has passed by the time the campaign is planned becomes "now", and a moment inside a customer's quiet
hours moves to their end: deferred to a later wave of the same run, never dropped (an ad-hoc
campaign has no tomorrow's plan).

Customers in service recovery (a campaign with ``pause_promotions_days`` reached them within its
pause) are left out by the pause gate (``paused``) unless the request includes them
(``include_service_recovery``); the preview says how many either way.

An offer whose template does not show the coupon is refused before anything is read: the template
is rendered for the preview's made-up customer, with a coupon, and the code must be in the email's
HTML and text (and the SMS) of every locale.

A written copy is an email: customers whose language it lacks get the nearest one or are left out
(``missing_locale``, counted in the preview); its subject A/B test gives each message a variant, a
stable hash recorded in the plan's ``variant`` column, which ``render_adhoc`` renders and
``loyalty attribution`` reports. An offer needs ``{{ coupon_code }}`` in every language's body.

The preview (sizes, decisions, one sample per locale) carries no personal data: the samples are
rendered for a made-up customer with a sample signing key, never for a real one.
"""

from __future__ import annotations

import difflib
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import numpy as np
import pandas as pd
from jinja2 import meta
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tasks.consent.suppression import SuppressionList
from tasks.consent.tokens import MessageKeys
from tasks.data.snapshot import read_table
from tasks.jobs.adhoc_preview import (
    AdhocPreview,
    artifact_key,
    coupon_not_shown,
    markdown_table,
    preview_numbers,
    service_recovery_numbers,
)
from tasks.kernel import progress
from tasks.kernel.calendar import business_date
from tasks.kernel.enums import AdhocStatus, Channel, Decision, DeliveryOutcome, MessageKind, SkipReason, Table
from tasks.kernel.errors import CatalogError
from tasks.kernel.paths import ADHOC_FOLDER, RunPaths
from tasks.kernel.settings import Settings
from tasks.plan.campaigns import AdhocTrigger, Campaign, Offer, Step, daily_campaigns, load_catalog
from tasks.plan.gates import RESERVE_DAYS, DeliveryRules, delivery_rules, quiet_until
from tasks.plan.history import marketing_history
from tasks.plan.planner import (
    MESSAGE_PROFILE_COLUMNS,
    CustomerPreferences,
    Planning,
    PlanSummary,
    Scheduler,
    Suppressed,
    at_local_hour,
    audience_members,
    commit_shards,
    current_suppressions,
    due_steps,
    ledger_lookup,
    message_people,
    pause_gate,
    plan_candidates,
    scheduled_steps,
    shop_data,
)
from tasks.plan.triggers import ShopData
from tasks.profile.expressions import MAX_EXPRESSION_CHARS, ExpressionError, compile_expression
from tasks.profile.segments import CompiledSegment, load_segments, read_snapshot
from tasks.render.compose import load_picks, load_products, render_shard
from tasks.render.markdown_copy import LAYOUT, EmailCopy, undeclared
from tasks.render.outbox import write_index
from tasks.render.templating import PARTS, SMS_PART, make_environment
from tasks.report.run_report import collect_outbox
from tasks.state.backend import open_state

PREFIX = "adhoc_"
PRIORITY = 50  # the default priority in the frequency budget (the request's ``priority``)
FOLDER = ADHOC_FOLDER  # <output_dir>/adhoc/<name>/<as_of>/: a campaign's day, beside the daily runs' days
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Template variables that only an offer fills: a template using them without one would show "None".
OFFER_VARIABLES = frozenset({"coupon_code", "percent_off", "coupon_valid_until"})


class AdhocError(ValueError):
    """The request cannot become a campaign; the message says which field and why, in one line."""


class AdhocRequest(BaseModel):
    """A marketer's one-off campaign: who, with which template (or words of its own), on which channels, with which
    offer, when.

    Who: a segment (a select of the catalog's) or a condition, exactly one; the CLI's ``--audience`` takes either
    in one field. Two fields in the form because a marketer mostly picks a segment and only sometimes writes a
    condition: a select cannot be mistyped, and the condition stays one free line for the rest.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        max_length=64 - len(PREFIX),
        description="snake_case (spring_sale); the campaign is adhoc_<name>. Re-running it on the same day "
        "sends nobody a second message.",
        json_schema_extra={"pattern": _SNAKE.pattern},
    )
    segment: str = Field(
        "",
        description="Who gets it: a segment of campaigns/segments.yaml (vip, at_risk, never_bought, ...); or leave "
        "it empty and write a condition under Audience.",
        json_schema_extra=lambda schema: _choices(schema, segment_names),
    )
    audience: str = Field(
        "",
        max_length=MAX_EXPRESSION_CHARS,
        description='Or a condition over the customer profile, e.g. lifecycle == "lapsed" and predicted_clv > 50 '
        "(a segment's name works too).",
    )
    template: str = Field(
        "",
        description="A folder under templates/ (weekly_sale, win_back, ...); or leave it empty and write the email "
        "below (email_copy).",
        json_schema_extra=lambda schema: _choices(schema, template_names),
    )
    email_copy: EmailCopy | None = Field(
        None,
        title="Email copy",  # an optional nested form is labelled "Field" in Prefect's UI without a title of its own
        description="Write the email here instead of choosing a template: a subject and a Markdown body per "
        "language, in the shop's layout; optional subject A/B test. Email only.",
    )
    channels: tuple[Channel, ...] = Field(
        (Channel.EMAIL,), min_length=1, description="email, sms or both; each needs the customer's opt-in."
    )
    offer: Offer | None = Field(None, title="Offer", description="A personal coupon per customer (optional).")
    send_at: datetime | None = Field(
        None,
        description="When to send (without a zone: the shop's time). Default: 10:00 in each customer's zone "
        "today, or right after approval if that has passed. Quiet hours move a send to their end.",
    )
    holdout_share: float = Field(0.0, ge=0.0, lt=1.0, description="Share of the audience held out to measure uplift.")
    priority: int = Field(
        PRIORITY,
        ge=0,
        le=100,
        description="Rank in the frequency budget, 0-100 (the daily campaigns' are in campaigns/*.yaml: weekly_sale "
        "20, win_back 60, ...). What earlier plans send keeps its room; this campaign yields to a daily step of "
        "higher priority due in the coming days and takes the room ahead of a lower one.",
    )
    include_service_recovery: bool = Field(
        False,
        description="Also send to customers in service recovery (an apology reached them within its pause on "
        "promotions). By default they are left out, and the preview says how many.",
    )
    dry_run: bool = Field(False, description="Publish the preview and stop: no approval, nothing sent.")
    as_of: date | None = Field(None, description="The business date. Default: today in the shop's time zone.")
    data: str | None = Field(None, description="Folder or s3:// prefix of the shop's tables. Default: LOYALTY_DATA.")
    approve_within_hours: int = Field(
        24, ge=1, le=168, description="Hours to wait for approval; after that the campaign stops, nothing sent."
    )

    @field_validator("name", "template", "segment")
    @classmethod
    def _snake_case(cls, value: str, info: ValidationInfo) -> str:
        if (value or info.field_name == "name") and not _SNAKE.fullmatch(value):  # "": no template, no segment
            raise ValueError(
                f"{value!r} is not snake_case: lowercase letters, digits and _, starting with a letter (spring_sale)"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _once_each(cls, channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if len(set(channels)) != len(channels):
            raise ValueError("each channel at most once")
        return channels

    @model_validator(mode="after")
    def _template_or_copy(self) -> AdhocRequest:
        if bool(self.segment) == bool(self.audience.strip()):
            raise ValueError("give either a segment or an audience condition, not both")
        if bool(self.template) == (self.email_copy is not None):
            raise ValueError("give either a template or the email's copy (email_copy), not both")
        if self.email_copy is not None and set(self.channels) != {Channel.EMAIL}:
            raise ValueError("a written copy is an email: channels must be email only")
        return self

    @property
    def campaign_name(self) -> str:
        return f"{PREFIX}{self.name}"


def _choices(schema: dict[str, Any], names: Callable[[Settings], list[str]]) -> None:
    """Offer the catalog's names as the form's choices (a select in the Prefect UI), read when the form is built.

    "" (none) stays a choice: the other field says who or what instead. No catalog found: a free text field.
    """
    try:
        found = names(Settings())
    except (OSError, CatalogError, ValueError):
        return
    if found:
        schema["enum"] = ["", *found]


def template_names(settings: Settings) -> list[str]:
    """The templates a campaign can send: the folders under templates/ with an English email."""
    folder = settings.templates_dir
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("_") and (p / "en" / PARTS[1]).is_file())


def segment_names(settings: Settings) -> list[str]:
    """The segments of campaigns/segments.yaml, in its order."""
    path = settings.campaigns_dir / "segments.yaml"
    return [s.name for s in load_segments(path)] if path.is_file() else []


class Approval(RunInput):
    """The approval form shown when the campaign pauses: approve to send, or reject with a comment."""

    approved: bool
    comment: str = ""


class Audience(BaseModel):
    """Who a request reaches: a named segment (and its expression) or an expression of its own."""

    model_config = ConfigDict(frozen=True)

    segment: str | None
    expression: str

    @property
    def label(self) -> str:
        return f"segment {self.segment}" if self.segment else f"`{self.expression}`"


# --- the request -> a campaign ------------------------------------------------------------------------------------


def adhoc_paths(output_dir: Path, name: str, as_of: date) -> RunPaths:
    """The folder of one ad-hoc campaign's day: ``<output_dir>/adhoc/<name>/<as_of>/``."""
    return RunPaths(root=output_dir / FOLDER / name / as_of.isoformat())


def resolve_audience(
    audience: str, segments: Sequence[CompiledSegment], segments_file: str = "segments.yaml"
) -> Audience:
    """Return the audience a request names: a segment of the catalog first, else an expression over the profile."""
    text = audience.strip()
    named = {s.name: s for s in segments}
    if text in named:
        return Audience(segment=text, expression=named[text].expression)
    try:
        compile_expression(text)
    except ExpressionError as exc:
        if _IDENTIFIER.fullmatch(text):
            close = difflib.get_close_matches(text, list(named), n=1)
            hint = f" (did you mean the segment {close[0]!r}?)" if close else ""
            raise AdhocError(
                f"audience {text!r} is no segment of {segments_file}{hint}, and as an expression: {exc}"
            ) from None
        raise AdhocError(f"audience `{text}`: {exc}") from None
    return Audience(segment=None, expression=text)


def template_variables(env: jinja2.Environment, template: str, channels: Sequence[Channel]) -> frozenset[str]:
    """Return the variables a template's English parts (and their layouts) read, for the request's channels."""
    parts = [*PARTS] if Channel.EMAIL in channels else []
    parts += [SMS_PART] if Channel.SMS in channels else []
    found: set[str] = set()
    pending = [f"{template}/en/{part}" for part in parts]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        source = env.loader.get_source(env, name)[0] if env.loader is not None else ""
        tree = env.parse(source)
        found |= meta.find_undeclared_variables(tree)
        pending += [str(n) for n in meta.find_referenced_templates(tree) if n is not None]
    return frozenset(found)


def check_template(templates_dir: Path, template: str, channels: Sequence[Channel]) -> frozenset[str]:
    """Check a template has every part the channels need in English and in each locale it has; return its variables."""
    folder = templates_dir / template
    if not folder.is_dir():
        known = sorted(p.name for p in templates_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))
        close = difflib.get_close_matches(template, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (there are: {', '.join(known) or 'none'})"
        raise AdhocError(f"unknown template {template!r}: no folder {folder}{hint}")
    parts = [*(PARTS if Channel.EMAIL in channels else ()), *((SMS_PART,) if Channel.SMS in channels else ())]
    locales = sorted({"en"} | {p.name for p in folder.iterdir() if p.is_dir()})
    for locale in locales:
        missing = [p for p in parts if not (folder / locale / p).is_file()]
        if missing:
            raise AdhocError(f"template {template!r}: {template}/{locale}/{missing[0]} not found")
    try:
        return template_variables(make_environment(templates_dir), template, channels)
    except jinja2.TemplateError as exc:
        raise AdhocError(f"template {template!r}: {exc}") from None


def build_campaign(request: AdhocRequest, audience: Audience, shows_products: bool) -> Campaign:
    """The one-step campaign a request describes: today's occurrence, marketing, the request's priority, no late sends.

    A campaign written in the request (``email_copy``) names itself as its template: there is no folder.
    """
    return Campaign(
        name=request.campaign_name,
        description=f"Ad-hoc campaign for {audience.label}",
        kind=MessageKind.MARKETING,
        channels=request.channels,
        template=request.template or request.campaign_name,
        priority=request.priority,
        trigger=AdhocTrigger(type="adhoc"),
        steps=(Step(step=1),),
        audience=audience.expression,
        offer=request.offer,
        products="picks" if shows_products else "none",
        holdout_share=request.holdout_share,
        max_delay_days=0,
    )


def check_coupon_shown(campaign: Campaign, settings: Settings, as_of: date) -> None:
    """Refuse an offer whose template does not show the coupon: in every locale the template has, the sample
    message rendered with a coupon must carry its code in the email's HTML and text, and in the SMS."""
    folder = settings.templates_dir / campaign.template
    locales = sorted({"en"} | {p.name for p in folder.iterdir() if p.is_dir()})
    try:
        missing = coupon_not_shown(make_environment(settings.templates_dir), campaign, locales, as_of, settings)
    except (jinja2.TemplateError, ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
        # a RenderError, a bad article file (CatalogError), or a template that needs its own campaign's trigger
        raise AdhocError(f"template {campaign.template!r} cannot be rendered for an ad-hoc campaign: {exc}") from None
    if missing:
        where = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise AdhocError(
            f"template {campaign.template!r} does not show the coupon: its code is not in the rendered {where}; "
            "choose a template that shows {{ coupon_code }} (or add it to this one), or send without an offer"
        )


def campaign_for(request: AdhocRequest, settings: Settings) -> tuple[Campaign, Audience]:
    """Check a request against the segments file and the templates folder; return its campaign and audience.

    An offer needs a template that shows its coupon (``check_coupon_shown``); a template that shows one needs an offer.
    """
    path = settings.campaigns_dir / "segments.yaml"
    try:
        segments = load_segments(path) if path.exists() else []
    except CatalogError as exc:
        raise AdhocError(str(exc)) from None
    if request.segment and request.segment not in {s.name for s in segments}:
        raise AdhocError(f"segment {request.segment!r} is not in {path}")
    audience = resolve_audience(request.segment or request.audience, segments, str(path))
    if request.email_copy is not None:
        if not (settings.templates_dir / LAYOUT).is_file():
            raise AdhocError(f"a written copy goes into the shop's email layout: no {settings.templates_dir / LAYOUT}")
        check_copy_offer(request.email_copy, request.offer is not None)
        return build_campaign(request, audience, "products" in request.email_copy.variables()), audience
    template = request.template
    variables = check_template(settings.templates_dir, template, request.channels)
    if request.offer is None and variables & OFFER_VARIABLES:
        used = ", ".join(sorted(variables & OFFER_VARIABLES))
        raise AdhocError(f"template {template!r} shows a coupon ({used}): give an offer")
    campaign = build_campaign(request, audience, "products" in variables)
    if request.offer is not None:
        check_coupon_shown(campaign, settings, request.as_of or business_date(settings.shop_timezone))
    return campaign, audience


def check_copy_offer(copy: EmailCopy, offer: bool) -> None:
    """An offer needs its coupon code in every language's body; a copy that shows a coupon needs an offer."""
    used = copy.variables() & OFFER_VARIABLES
    if not offer and used:
        raise AdhocError(f"the copy shows a coupon ({', '.join(sorted(used))}): give an offer")
    if offer:
        bare = [locale for locale, words in copy.locales().items() if "coupon_code" not in undeclared(words.body)]
        if bare:
            raise AdhocError(
                f"the {bare[0]} body does not show the coupon: add {{{{ coupon_code }}}}, or send without an offer"
            )


@task(cache_policy=NO_CACHE)
def prepare_campaign(request: AdhocRequest, settings: Settings) -> tuple[Campaign, Audience]:
    """Check the request's audience, template and channels and build its campaign, before any data is read."""
    return campaign_for(request, settings)


# --- the plan -----------------------------------------------------------------------------------------------------


def candidates(members: pd.Series, as_of: date) -> pd.DataFrame:
    """Return the candidate rows of an audience (a boolean Series indexed by customer id): one step, due today."""
    ids = members.index[members.to_numpy(dtype=bool)].astype(str)
    day = as_of.isoformat()
    return pd.DataFrame(
        {
            "customer_id": np.asarray(ids, dtype=object),
            "step": 1,
            "occurrence": day,
            "due": day,
            "detail": pd.Series(pd.NA, index=range(len(ids)), dtype=object).to_numpy(),
        }
    )


def send_moment(send_at: datetime | None, shop_timezone: str) -> datetime | None:
    """Return a requested send time as an aware moment; a time without a zone is the shop's."""
    if send_at is None or send_at.tzinfo is not None:
        return send_at
    return send_at.replace(tzinfo=ZoneInfo(shop_timezone))


def schedule_sends(
    plan: pd.DataFrame,
    customers: pd.DataFrame,
    sending_at: datetime,
    send_at: datetime | None,
    rules: DeliveryRules,
) -> pd.DataFrame:
    """Fix each row's send time: the requested moment (else the planned local hour), never before ``sending_at``.

    A moment chosen here (requested, or "now" for a send hour already past) that falls inside a
    customer's quiet hours moves to their end: a later wave of the same run, never dropped.
    """
    plan = plan.copy()
    where = plan[["customer_id"]].merge(customers[["customer_id", "timezone", "country"]], on="customer_id", how="left")
    where.index = plan.index
    at = pd.to_datetime(plan["send_at"], utc=True)
    chosen = pd.Series(send_at is not None, index=plan.index)
    if send_at is not None:
        at = pd.Series(pd.Timestamp(send_at).tz_convert("UTC"), index=plan.index, dtype="datetime64[ns, UTC]")
        # the planner judged quiet hours at the default hour; the requested moment is judged below instead
        again = (plan["reason"] == SkipReason.QUIET_HOURS.value).to_numpy()
        plan.loc[again, "decision"] = Decision.SEND.value
        plan.loc[again, "reason"] = ""
    earliest = pd.Timestamp(sending_at)
    earliest = earliest.tz_localize("UTC") if earliest.tzinfo is None else earliest.tz_convert("UTC")
    chosen |= at < earliest
    at = at.mask(at < earliest, earliest)
    for moment in at.loc[chosen].unique():
        rows = (chosen & (at == moment)).to_numpy()
        at.loc[rows] = quiet_until(
            pd.Timestamp(moment).to_pydatetime(), where.loc[rows, "timezone"], where.loc[rows, "country"], rules
        )
    plan["send_at"] = at
    return plan


def requested_or_local(send_at: datetime | None) -> Scheduler:
    """The ad-hoc send time (gate 4): the requested moment, else the campaign's local hour, never before sending.

    A moment chosen here that falls inside a customer's quiet hours moves to their end: a later wave
    of the same run, never dropped (an ad-hoc campaign has no tomorrow's plan).
    """

    def schedule(campaign: Campaign, rows: pd.DataFrame, planning: Planning) -> tuple[pd.Series, np.ndarray]:
        at, deferred = at_local_hour(campaign, rows, planning)
        planned = pd.DataFrame(
            {
                "customer_id": rows["customer_id"].to_numpy(),
                "send_at": at.to_numpy(),
                "decision": np.where(deferred, Decision.DEFERRED.value, Decision.SEND.value),
                "reason": np.where(deferred, SkipReason.QUIET_HOURS.value, ""),
            },
            index=rows.index,
        )
        where = rows[["customer_id", "timezone", "country"]].drop_duplicates("customer_id")
        out = schedule_sends(planned, where, planning.sending_at, send_at, planning.rules)
        return out["send_at"], (out["decision"] == Decision.DEFERRED.value).to_numpy()

    return schedule


def build_adhoc_plan(
    campaign: Campaign,
    audience: pd.DataFrame,
    customers: pd.DataFrame,
    suppressed: Suppressed,
    rules: DeliveryRules,
    history: pd.DataFrame,
    already: Callable[[pd.Series], set[str]],
    as_of: date,
    sending_at: datetime,
    send_at: datetime | None = None,
    others: Mapping[str, Campaign] | None = None,
    data: ShopData | None = None,
    include_service_recovery: bool = False,
) -> pd.DataFrame:
    """Plan an ad-hoc campaign through the planner's gates; its budget also counts what was planned today.

    ``others``: the catalog's campaigns, so a pause after service recovery covers this campaign too, and
    (with ``data``, the day's tables) the daily campaigns' steps due on the coming days keep their room in the
    budget where their priority is above the campaign's, as in the daily run (``reserved``).
    ``include_service_recovery``: no pause after service recovery for this campaign (the steps kept room for
    are still judged with it: a paused customer's coming promotions keep no room).
    """
    planning = Planning(
        as_of=as_of,
        sending_at=sending_at,
        rules=rules,
        catalog={**(others or {}), campaign.name: campaign},
        suppressed=suppressed,
        history=history,
        already=already,
        schedule=requested_or_local(send_at),
        # what customers chose on their preferences page (the run's copy, ``merge_preferences``)
        preferences=CustomerPreferences.from_frame(data.optional("preferences") if data is not None else None),
    )
    if data is not None:
        daily = daily_campaigns({n: c for n, c in (others or {}).items() if n != campaign.name})
        first, last = as_of + timedelta(days=1), as_of + timedelta(days=RESERVE_DAYS)
        coming = {n: due_steps(c, data, first, last) for n, c in daily.items() if c.kind is MessageKind.MARKETING}
        planning = replace(planning, scheduled=scheduled_steps(daily, coming, customers, planning))
    if include_service_recovery:
        unpaused = {n: c for n, c in planning.catalog.items() if c.pause_promotions_days == 0}
        planning = replace(planning, catalog=unpaused)
    return plan_candidates([(campaign, audience)], customers, planning)


def pauses(catalog: Mapping[str, Campaign]) -> dict[str, int]:
    """The campaigns that pause promotions after they reach a customer (service recovery), and for how many days."""
    return {n: c.pause_promotions_days for n, c in catalog.items() if c.pause_promotions_days > 0}


def in_service_recovery(
    customer_ids: Iterable[str], catalog: Mapping[str, Campaign], history: pd.DataFrame, as_of: date
) -> frozenset[str]:
    """The customers a pausing campaign (service recovery) reached within its pause: whom the pause gate stops."""
    ids = pd.Series(sorted({str(c) for c in customer_ids}), dtype=object)
    probe = pd.DataFrame(
        {"customer_id": ids, "campaign": "", "kind": MessageKind.MARKETING.value, "decision": Decision.SEND.value}
    )
    moment = datetime.combine(as_of, datetime.min.time(), ZoneInfo("UTC"))
    planning = Planning(as_of=as_of, sending_at=moment, rules=DeliveryRules(), catalog=catalog, history=history)
    stopped = np.zeros(len(probe), dtype=bool)
    for mask, _, _ in pause_gate(probe, planning, set()):
        stopped |= np.asarray(mask, dtype=bool)
    return frozenset(probe.loc[stopped, "customer_id"].astype(str))


@task(cache_policy=NO_CACHE)
def plan_adhoc(
    campaign: Campaign,
    audience: Audience,
    paths: RunPaths,
    as_of: date,
    settings: Settings,
    send_at: datetime | None,
    sending_at: datetime,
    include_service_recovery: bool = False,
    copy: EmailCopy | None = None,
) -> AdhocPreview:
    """Plan the audience through every gate, write the plan, and count it for the preview.

    With a written ``copy``: customers whose language it lacks are left out if it says ``skip`` (counted
    in the preview), and each message gets its subject variant (the plan's ``variant`` column).
    """
    customers = read_table(paths, Table.CUSTOMERS)
    profile = pd.read_parquet(paths.profile)
    members = candidates(audience_members(audience.expression, profile), as_of)
    members, no_copy = copy_readers(members, customers, copy)
    catalog = load_catalog(settings.campaigns_dir)
    # the daily campaigns (their coming steps keep room in the budget) and whatever pauses promotions
    others = {n: c for n, c in catalog.items() if n in daily_campaigns(catalog) or c.pause_promotions_days > 0}
    history = marketing_history(settings.output_dir, as_of, exclude=paths.plan, store=open_state(settings).history)
    plan = build_adhoc_plan(
        campaign,
        members,
        customers,
        current_suppressions(SuppressionList.for_settings(settings)),
        delivery_rules(settings),
        history,
        ledger_lookup(settings),
        as_of,
        sending_at,
        send_moment(send_at, settings.shop_timezone),
        others,
        shop_data(paths, as_of, settings),
        include_service_recovery,
    )
    if copy is not None:
        plan = with_variants(plan, copy)
    paths.plan.parent.mkdir(parents=True, exist_ok=True)
    plan.to_parquet(paths.plan, index=False)
    recovering = in_service_recovery(members["customer_id"], catalog, history, as_of)
    recovery = service_recovery_numbers(plan, recovering, include_service_recovery, pauses(catalog))
    preview = preview_numbers(campaign, audience, plan, customers, read_snapshot(paths.segments), as_of, recovery)
    return preview.model_copy(update={"no_copy_in_locale": no_copy, "variants": variant_counts(plan)})


def copy_readers(
    members: pd.DataFrame, customers: pd.DataFrame, copy: EmailCopy | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Leave out the candidates whose language a copy lacks, when it says ``skip``; return them counted per locale."""
    if copy is None or copy.missing_locale != "skip":
        return members, {}
    locale = customers.assign(customer_id=customers["customer_id"].astype(str)).set_index("customer_id")["locale"]
    theirs = members["customer_id"].astype(str).map(locale).fillna("en").astype(str)
    kept = theirs.isin(list(copy.locales())).to_numpy()
    dropped = theirs.loc[~kept].value_counts().sort_index()
    return members.loc[kept].reset_index(drop=True), {str(k): int(v) for k, v in dropped.items()}


def with_variants(plan: pd.DataFrame, copy: EmailCopy) -> pd.DataFrame:
    """Add each message's subject variant (``variant``: "A".."D", "" without an A/B test), stable across re-runs."""
    variants = [
        copy.variant_for(str(c), str(o), str(i))
        for c, o, i in zip(plan["campaign"], plan["occurrence"], plan["customer_id"], strict=True)
    ]
    return plan.assign(variant=pd.Series(variants, index=plan.index, dtype=object))


def variant_counts(plan: pd.DataFrame) -> dict[str, int]:
    """Messages to send per subject variant (empty without an A/B test)."""
    if "variant" not in plan.columns:
        return {}
    sending = plan.loc[(plan["decision"] == Decision.SEND.value) & (plan["variant"].astype(str) != ""), "variant"]
    return {str(k): int(v) for k, v in sending.value_counts().sort_index().items()}


# --- after the decision -------------------------------------------------------------------------------------------


@task(cache_policy=NO_CACHE)
def commit_plan(campaign: Campaign, paths: RunPaths, settings: Settings, approved_at: datetime) -> PlanSummary:
    """Write the approved plan's coupon registry and send shards (by wave); return the waves.

    Send times that passed while the plan waited for approval become ``approved_at``, or the end
    of the customer's quiet hours if the approval came at night.
    """
    customers = read_table(paths, Table.CUSTOMERS)
    plan = schedule_sends(pd.read_parquet(paths.plan), customers, approved_at, None, delivery_rules(settings))
    profile = pd.read_parquet(paths.profile, columns=list(MESSAGE_PROFILE_COLUMNS))
    summary = commit_shards(plan, message_people(customers, profile), paths, settings, {campaign.name: campaign})
    progress.advance("send", 0, summary.to_send)
    return summary


@task(cache_policy=NO_CACHE)
def render_adhoc(
    campaign: Campaign, paths: RunPaths, shard: int, as_of: date, settings: Settings, copy: EmailCopy | None = None
) -> int:
    """Render one shard of the ad-hoc campaign (its template, or the copy written in the request); return how many."""
    plan = pd.read_parquet(paths.send_shard(shard))
    if copy is not None:  # each message's subject variant, as the approved plan recorded it
        variants = pd.read_parquet(paths.plan, columns=["idempotency_key", "variant"])
        plan = plan.merge(variants, on="idempotency_key", how="left")
    catalog = load_products(paths)
    ids = plan["customer_id"].astype(str).unique().tolist()
    picks = load_picks(paths, ids, catalog) if campaign.products == "picks" else {}
    env = make_environment(settings.templates_dir)
    keys = MessageKeys.for_settings(settings)
    rendered = render_shard(
        plan, {campaign.name: campaign}, env, settings, keys, as_of, paths.outbox, picks, catalog, copy=copy
    )
    target = paths.rendered_shard(shard)
    target.parent.mkdir(parents=True, exist_ok=True)
    rendered.to_parquet(target, index=False)
    return len(rendered)


@task(cache_policy=NO_CACHE)
def withdraw_plan(paths: RunPaths, reason: AdhocStatus) -> None:
    """Set a plan that will not be sent aside (``plan/<reason>.parquet``), so no budget counts it; drop its shards."""
    if paths.plan.exists():
        paths.plan.replace(paths.plan.with_name(f"{reason}.parquet"))
    for shard in paths.plan.parent.glob("send-*.parquet"):
        shard.unlink()
    paths.coupons.unlink(missing_ok=True)
    shutil.rmtree(paths.root / "render", ignore_errors=True)


class AdhocSummary(BaseModel):
    """What an ad-hoc campaign did: its audience, what it planned, whether it was approved, what it sent."""

    campaign: str
    as_of: date
    status: AdhocStatus
    approved: bool
    comment: str = ""
    audience: int
    to_send: int
    sent: int = 0
    holdout: int = 0
    skipped_by_reason: dict[str, int]
    delivery: dict[str, int] = {}
    run_dir: str

    def headline(self) -> str:
        """The one line that says what happened."""
        why = f" ({self.comment})" if self.comment else ""
        return {
            AdhocStatus.DRY_RUN: f"DRY RUN: nothing was sent; {self.to_send:,} messages would go to an audience of {self.audience:,}.",
            AdhocStatus.NOTHING_TO_SEND: f"Nothing to send: none of the {self.audience:,} customers can get this campaign today.",
            AdhocStatus.REJECTED: f"Rejected{why}: nothing was sent.",
            AdhocStatus.TIMED_OUT: "Not approved in time: nothing was sent.",
            AdhocStatus.SENT: f"Sent {self.sent:,} of {self.to_send:,} messages to an audience of {self.audience:,}.",
        }[self.status]


def summarise_adhoc(
    preview: AdhocPreview,
    status: AdhocStatus,
    paths: RunPaths,
    comment: str = "",
    delivery: Mapping[str, int] | None = None,
) -> AdhocSummary:
    """Put the preview's numbers, the decision (and the approver's comment) and the delivery outcomes into one summary."""
    delivery = dict(delivery or {})
    return AdhocSummary(
        campaign=preview.campaign,
        as_of=preview.as_of,
        status=status,
        approved=status is AdhocStatus.SENT,
        comment=comment,
        audience=preview.audience,
        to_send=preview.to_send,
        sent=int(delivery.get(DeliveryOutcome.SENT, 0)),
        holdout=preview.holdout,
        skipped_by_reason=preview.not_sent_by_reason,
        delivery=delivery,
        run_dir=str(paths.root),
    )


def write_report(summary: AdhocSummary, paths: RunPaths, shards: Sequence[int]) -> str:
    """Write the summary file and the outbox index; return the result as markdown."""
    write_index(paths.outbox, collect_outbox(paths, list(shards)), f"Outbox {summary.campaign} {summary.as_of}")
    paths.summary.write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    lines = [f"# {summary.campaign} {summary.as_of}", "", f"**{summary.headline()}**", ""]
    return "\n".join(lines + markdown_table(["outcome", "messages"], sorted(summary.delivery.items()))) + "\n"


@task(cache_policy=NO_CACHE)
def report_adhoc(summary: AdhocSummary, paths: RunPaths, shards: list[int]) -> AdhocSummary:
    """Write the summary file and the outbox index, and publish the result as a markdown artifact."""
    markdown = write_report(summary, paths, shards)
    key = artifact_key(summary.campaign.removeprefix(PREFIX), "result")
    create_markdown_artifact(markdown=markdown, key=key, description=summary.headline())
    return summary
