"""An ad-hoc campaign's preview: the numbers a person approves and one sample per locale, with nobody's data.

The counts come from the plan (sizes by primary segment and channel, skips by reason, locales,
send times, the customers in service recovery left out or included, the priority in the budget);
the samples are rendered for a made-up customer with a placeholder name, so the preview artifact,
the approval form and the terminal show no real customer's data. An offer whose template does not
show the coupon is refused before the preview (``coupon_not_shown``): checked on the rendered sample.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

import jinja2
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from tasks.kernel.enums import Channel, Decision, SkipReason
from tasks.kernel.settings import Settings
from tasks.plan.campaigns import Campaign
from tasks.plan.offers import coupon_code
from tasks.render.catalog_check import SAMPLE_KEYS, SAMPLE_PICKS, SampleMessage, render_sample
from tasks.render.compose import build_context
from tasks.render.markdown_copy import VARIANT_NAMES, EmailCopy, render_copy
from tasks.render.templating import make_environment, template_locale

if TYPE_CHECKING:
    from tasks.jobs.adhoc import Audience

# A made-up first name per locale for the preview's samples (never a real customer's).
SAMPLE_FIRST_NAMES: dict[str, str] = {"ru": "Анна", "pl": "Anna", "en": "Anna"}
SAMPLE_CUSTOMER = "C-SAMPLE"


class ServiceRecovery(BaseModel):
    """The audience's customers in service recovery: a pausing campaign (an apology) reached them within its pause.

    By default they are left out (the pause gate skips them as ``paused``); with the request's
    ``include_service_recovery`` they get the campaign. ``customers``: those left out, or those included
    who get a message. ``pauses``: each pausing campaign and its days.
    """

    customers: int = 0
    included: bool = False
    pauses: dict[str, int] = Field(default_factory=dict)


class AdhocPreview(BaseModel):
    """What an ad-hoc campaign would do, in numbers: sizes, decisions, segments, locales. No personal data."""

    campaign: str
    priority: int  # in the frequency budget: a customer's room goes to the higher priority
    audience_label: str
    expression: str
    as_of: date
    channels: list[str]
    audience: int
    to_send: int
    to_send_by_channel: dict[str, int]
    holdout: int
    not_sent_by_reason: dict[str, int]
    by_segment: dict[str, dict[str, int]]  # primary segment -> customers, then messages to send per channel
    by_channel: dict[str, dict[str, int]]  # channel -> send, holdout, then one count per reason
    locales: dict[str, int]  # the audience's customers per locale
    send_from: datetime | None = None
    send_until: datetime | None = None
    service_recovery: ServiceRecovery = Field(default_factory=ServiceRecovery)
    # a written copy: customers left out because their language is not written (missing_locale=skip), per locale
    no_copy_in_locale: dict[str, int] = Field(default_factory=dict)
    variants: dict[str, int] = Field(default_factory=dict)  # messages to send per subject variant (A/B test)


def service_recovery_numbers(
    plan: pd.DataFrame, recovering: Iterable[str], included: bool, pauses: Mapping[str, int]
) -> ServiceRecovery:
    """Count the customers in service recovery a plan leaves out (``paused``) or, when included, sends to.

    ``recovering``: the audience's customers a pausing campaign reached within its pause.
    """
    if included:
        sending = plan.loc[plan["decision"] == Decision.SEND.value, "customer_id"].astype(str)
        customers = sending.loc[sending.isin(set(map(str, recovering)))].nunique()
    else:
        customers = plan.loc[plan["reason"] == SkipReason.PAUSED.value, "customer_id"].astype(str).nunique()
    return ServiceRecovery(customers=int(customers), included=included, pauses=dict(pauses))


def preview_numbers(
    campaign: Campaign,
    audience: Audience,
    plan: pd.DataFrame,
    customers: pd.DataFrame,
    segments: pd.DataFrame,
    as_of: date,
    service_recovery: ServiceRecovery | None = None,
) -> AdhocPreview:
    """Count a plan for the preview: per channel and reason, per primary segment, per locale, and the customers
    in service recovery (``service_recovery_numbers``; by default: those the plan leaves out as ``paused``)."""
    channels = [c.value for c in campaign.channels]
    ids = pd.Index(plan["customer_id"].astype(str).unique())
    sending = plan.loc[plan["decision"] == Decision.SEND.value]
    not_sent = plan.loc[plan["decision"].isin([Decision.SKIPPED.value, Decision.DEFERRED.value])]
    by_channel: dict[str, dict[str, int]] = {}
    for channel in channels:
        rows = plan.loc[plan["channel"] == channel]
        counts = {"send": int((rows["decision"] == Decision.SEND.value).sum())}
        counts["holdout"] = int((rows["decision"] == Decision.HOLDOUT.value).sum())
        reasons = rows.loc[rows["decision"].isin([Decision.SKIPPED.value, Decision.DEFERRED.value]), "reason"]
        counts |= {str(k): int(v) for k, v in reasons.value_counts().sort_index().items()}
        by_channel[channel] = counts
    primary = segments.assign(customer_id=segments["customer_id"].astype(str)).set_index("customer_id")["segment"]
    member_segment = pd.Series(ids, index=ids).map(primary).fillna("other").astype(str)
    by_segment: dict[str, dict[str, int]] = {}
    for name, size in member_segment.value_counts().items():
        by_segment[str(name)] = {"customers": int(size)}
    send_segment = sending["customer_id"].astype(str).map(member_segment)
    for name, channel in zip(send_segment, sending["channel"], strict=True):
        segment_counts = by_segment[str(name)]
        segment_counts[str(channel)] = segment_counts.get(str(channel), 0) + 1
    locale = customers.assign(customer_id=customers["customer_id"].astype(str)).set_index("customer_id")["locale"]
    locales = pd.Series(ids, index=ids).map(locale).fillna("en").astype(str).value_counts().sort_index()
    times = pd.to_datetime(sending["send_at"], utc=True)
    return AdhocPreview(
        campaign=campaign.name,
        priority=campaign.priority,
        audience_label=audience.label,
        expression=audience.expression,
        as_of=as_of,
        channels=channels,
        audience=len(ids),
        to_send=len(sending),
        to_send_by_channel={c: by_channel[c]["send"] for c in channels},
        holdout=int((plan["decision"] == Decision.HOLDOUT.value).sum()),
        not_sent_by_reason={str(k): int(v) for k, v in not_sent["reason"].value_counts().sort_index().items()},
        by_segment=by_segment,
        by_channel=by_channel,
        locales={str(k): int(v) for k, v in locales.items()},
        send_from=None if times.empty else times.min().to_pydatetime(),
        send_until=None if times.empty else times.max().to_pydatetime(),
        service_recovery=service_recovery or service_recovery_numbers(plan, (), False, {}),
    )


# --- samples and the preview -------------------------------------------------------------------------------------


class Sample(BaseModel):
    """One sample message, rendered for a made-up customer in one locale and channel."""

    locale: str
    customers: int  # the audience's customers who get this locale
    channel: str
    subject: str
    text: str
    subjects: dict[str, str] = Field(default_factory=dict)  # each subject variant's line (A/B test), by variant


def sample_row(campaign: Campaign, locale: str, channel: Channel, as_of: date) -> dict[str, object]:
    """The plan row of a made-up customer: a placeholder first name for the locale, nobody's data."""
    return {
        "idempotency_key": f"{campaign.name}/sample",
        "customer_id": SAMPLE_CUSTOMER,
        "campaign": campaign.name,
        "channel": channel.value,
        "first_name": SAMPLE_FIRST_NAMES.get(locale, "Anna"),
        "locale": locale,
        "days_since_last_order": 97,
        "top_category": None,
        "step": 1,
        "occurrence": as_of.isoformat(),
        "detail": None,
    }


def render_samples_with(
    env: jinja2.Environment, campaign: Campaign, locales: Mapping[str, int], as_of: date, settings: Settings
) -> list[Sample]:
    """Render one sample per locale the audience's customers get (a missing locale falls back to English)."""
    rendered: dict[str, int] = {}
    for locale, n in locales.items():
        shown = template_locale(env, campaign.template, locale)
        rendered[shown] = rendered.get(shown, 0) + n
    products = SAMPLE_PICKS if campaign.products == "picks" else ()
    samples = []
    for locale, n in sorted(rendered.items()):
        for channel in campaign.channels:
            sample = SampleMessage(locale, sample_row(campaign, locale, channel, as_of), products)
            parts = render_sample(env, campaign, sample, settings, as_of)
            subject, text = parts.get("subject.txt", ""), parts.get("sms.txt") or parts["body.txt"]
            samples.append(
                Sample(
                    locale=locale,
                    customers=n,
                    channel=channel.value,
                    subject=subject.rstrip("\n"),
                    text=text.rstrip("\n") if channel is Channel.SMS else text,
                )
            )
    return samples


def coupon_not_shown(
    env: jinja2.Environment, campaign: Campaign, locales: Iterable[str], as_of: date, settings: Settings
) -> list[str]:
    """The parts (``<locale>/<part>``) of the sample messages that do not show the offer's coupon code.

    Renders the preview's sample (a made-up customer, who gets a coupon) in each locale and channel and
    looks for its code in the rendered email's HTML and text, and in the SMS: the rendered output, not
    the template's source, so a code behind a condition that never holds counts as not shown.
    """
    offer = campaign.step_offer(campaign.steps[0])
    if offer is None:
        return []
    # the code the plan's coupon registry would hold for the sample customer, as the message's context builds it
    code = coupon_code(SAMPLE_KEYS.coupon, campaign.name, offer, SAMPLE_CUSTOMER, as_of.isoformat())
    products = SAMPLE_PICKS if campaign.products == "picks" else ()
    missing = []
    for locale in locales:
        for channel in campaign.channels:
            sample = SampleMessage(locale, sample_row(campaign, locale, channel, as_of), products)
            parts = render_sample(env, campaign, sample, settings, as_of)
            wanted = ("sms.txt",) if channel is Channel.SMS else ("body.html", "body.txt")
            missing += [f"{locale}/{part}" for part in wanted if code not in parts[part]]
    return missing


def render_copy_samples(
    env: jinja2.Environment,
    campaign: Campaign,
    copy: EmailCopy,
    locales: Mapping[str, int],
    as_of: date,
    settings: Settings,
) -> list[Sample]:
    """Render a written copy for a made-up customer in every language it has, with each subject variant's line."""
    counts: dict[str, int] = dict.fromkeys(copy.locales(), 0)
    for locale, n in locales.items():
        shown = copy.locale_for(locale)
        if shown is not None:
            counts[shown] += n
    products = SAMPLE_PICKS if campaign.products == "picks" else ()
    samples = []
    for locale, n in counts.items():
        row = sample_row(campaign, locale, Channel.EMAIL, as_of)
        context = build_context(row, campaign, settings, SAMPLE_KEYS, as_of, locale, products)
        variants = VARIANT_NAMES[: len(copy.subject_variants)]
        message = render_copy(env, copy, locale, variants[0] if variants else "", context)
        subjects = {v: render_copy(env, copy, locale, v, context).subject for v in variants}
        samples.append(
            Sample(
                locale=locale,
                customers=n,
                channel=Channel.EMAIL.value,
                subject=message.subject,
                text=message.text,
                subjects=subjects,
            )
        )
    return samples


@task(cache_policy=NO_CACHE)
def render_samples(
    campaign: Campaign, locales: dict[str, int], as_of: date, settings: Settings, copy: EmailCopy | None = None
) -> list[Sample]:
    """Render one sample message per locale of the audience (every written language of a copy), for a made-up
    customer."""
    env = make_environment(settings.templates_dir)
    if copy is not None:
        return render_copy_samples(env, campaign, copy, locales, as_of, settings)
    return render_samples_with(env, campaign, locales, as_of, settings)


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def approval_question(preview: AdhocPreview) -> str:
    """The question a person approves: "Send 1,234 emails and 56 SMS?"."""
    words = {Channel.EMAIL.value: ("email", "emails"), Channel.SMS.value: ("SMS", "SMS")}
    counts = [_count(preview.to_send_by_channel.get(c, 0), *words[c]) for c in preview.channels]
    return f"Send {' and '.join(counts)}?"


def service_recovery_note(preview: AdhocPreview) -> str:
    """One line on the audience's customers in service recovery: how many are left out (or included) and why;
    empty when there are none."""
    recovery = preview.service_recovery
    if not recovery.customers:
        return ""
    who = _count(recovery.customers, "customer", "customers") + " in service recovery"
    pauses = " or ".join(f"{name}, {days} days" for name, days in sorted(recovery.pauses.items()))
    why = f"an apology{f' ({pauses})' if pauses else ''} reached them within its pause on promotions"
    if recovery.included:
        return f"{who} included (include_service_recovery): {why}."
    return f"{who} left out: {why}. To send to them anyway: include_service_recovery (--include-service-recovery)."


def artifact_key(name: str, part: str = "preview") -> str:
    """An artifact key of a request's campaign: ``adhoc-<name>-<part>`` (keys allow only a-z, 0-9 and -)."""
    return re.sub(r"[^a-z0-9-]", "-", f"adhoc-{name}-{part}".lower())


def approval_description(preview: AdhocPreview, name: str) -> str:
    """The text above the approval form: the question, the audience and where the preview is."""
    held = f", {_count(preview.holdout, 'held out', 'held out')}" if preview.holdout else ""
    not_sent = sum(preview.not_sent_by_reason.values())
    recovery = service_recovery_note(preview)
    return (
        f"**{approval_question(preview)}**\n\n"
        + (f"**{recovery}**\n\n" if recovery else "")
        + f"Ad-hoc campaign `{preview.campaign}` (priority {preview.priority}) for {preview.audience_label}: "
        f"{_count(preview.audience, 'customer', 'customers')} in the audience{held}, "
        f"{_count(not_sent, 'message', 'messages')} not sent (consent, suppression, service recovery, budget, ...). "
        f"See the artifact `{artifact_key(name)}` for the numbers and a sample per locale. "
        "Tick approved to send; leave it unticked to stop with nothing sent."
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]


def preview_markdown(preview: AdhocPreview, samples: Sequence[Sample], dry_run: bool) -> str:
    """The preview as markdown for the Prefect UI: counts and samples only; no ids, addresses or names."""
    title = f"# Ad-hoc campaign `{preview.campaign}`: preview for {preview.as_of}"
    lines = [title, ""]
    if dry_run:
        lines += ["**DRY RUN: this is the preview only; nothing will be sent.**", ""]
    lines += [f"**{approval_question(preview)}**", ""]
    recovery = service_recovery_note(preview)
    if recovery:
        lines += [f"**{recovery}**", ""]
    rule = "" if preview.audience_label == f"`{preview.expression}`" else f" (`{preview.expression}`)"
    lines += [f"Audience: {preview.audience_label}{rule}: **{preview.audience:,} customers**."]
    lines += [f"Priority in the frequency budget: {preview.priority} (a customer's room goes to the higher one)."]
    if preview.send_from is not None and preview.send_until is not None:
        first, last = f"{preview.send_from:%Y-%m-%d %H:%M}", f"{preview.send_until:%Y-%m-%d %H:%M}"
        lines += [f"Sending at {first} UTC." if first == last else f"Sending from {first} to {last} UTC."]
    lines += ["", "## Audience by primary segment", ""]
    lines += markdown_table(
        ["segment", "customers", *(f"{c} to send" for c in preview.channels)],
        [[s, c["customers"], *(f"{c.get(ch, 0):,}" for ch in preview.channels)] for s, c in preview.by_segment.items()],
    )
    reasons = sorted({r for counts in preview.by_channel.values() for r in counts} - {"send", "holdout"})
    lines += ["", "## Decisions", ""]
    rows = [["send", *(preview.by_channel[c]["send"] for c in preview.channels)]]
    rows += [["holdout", *(preview.by_channel[c]["holdout"] for c in preview.channels)]]
    rows += [[f"not sent: {r}", *(preview.by_channel[c].get(r, 0) for c in preview.channels)] for r in reasons]
    lines += markdown_table(["decision", *preview.channels], rows)
    if preview.no_copy_in_locale:
        left = ", ".join(f"{locale} {n:,}" for locale, n in preview.no_copy_in_locale.items())
        lines += ["", f"**Left out, no copy in their language (missing_locale=skip): {left}.**"]
    if preview.variants:
        lines += ["", "## Subject A/B test", ""]
        lines += markdown_table(["variant", "messages to send"], sorted(preview.variants.items()))
    lines += ["", "## Samples (a made-up customer)", ""]
    for sample in samples:
        lines += [f"### {sample.locale}, {sample.channel} ({_count(sample.customers, 'customer', 'customers')})", ""]
        if sample.subjects:
            lines += [f"**Subject {variant}:** {subject}  " for variant, subject in sample.subjects.items()] + [""]
        elif sample.subject:
            lines += [f"**Subject:** {sample.subject}", ""]
        lines += ["```text", sample.text.strip().replace("```", "'''"), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


@task(cache_policy=NO_CACHE)
def publish_preview(preview: AdhocPreview, samples: list[Sample], name: str, dry_run: bool) -> str:
    """Publish the preview as a markdown artifact (key ``adhoc-<name>-preview``); return its key."""
    key = artifact_key(name)
    create_markdown_artifact(
        markdown=preview_markdown(preview, samples, dry_run), key=key, description=approval_question(preview)
    )
    return key
