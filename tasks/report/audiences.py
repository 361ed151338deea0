"""Audiences for ad platforms: a segment's customers as the hashed customer list Meta, Google, VK or Yandex takes.

No platform API is called: the file is what a marketer uploads by hand or what a sync job sends. One file per
(segment, platform), ``<day>/audiences/<segment>-<platform>.csv`` in the day's run folder (S3 too), written each
morning by the ``audiences`` flow for the pairs ``LOYALTY_AUDIENCES`` names, or anywhere by
``loyalty audiences export``. Every identifier is normalised the way the platform documents, then SHA-256
(lower-case hex); no raw address is ever written.

Who is in it: the segment's members (``campaigns/segments.yaml``, evaluated over the day's profile), minus, in
this order, each counted under the first reason that applies:

1. ``not_opted_in`` - no ``ads_opt_in`` (an optional customers column: absent, empty or unreadable is no);
2. ``suppressed`` - an erasure or a "no" wins over the flag: an address suppressed on its channel (hard bounce,
   complaint, SMS opt-out, ``forgotten``) or a customer unsubscribed from marketing (or everything) on any
   channel. An ad is not a message, but it is an offer, and a forgotten customer must not come back as a hash;
3. ``service_recovery`` - an open incident (the profile's ``unhappy``: late, returned, cancelled after paying,
   a low rating, within ``LOYALTY_UNHAPPY_WINDOW_DAYS``): they get an apology, not ads;
4. ``recent_buyer`` - for a win-back segment (``WIN_BACK_SEGMENTS``), a purchase ``recent_buyer_days`` or fewer
   days before ``as_of`` (``LOYALTY_AUDIENCE_RECENT_BUYER_DAYS``, default 14);
5. ``no_identifier`` - neither an email nor a phone the platform's rules can normalise.

Rows with the same hashed identifiers are written once.

What each platform documents, and what is done here:

* Google Customer Match
  (https://developers.google.com/display-video/api/guides/tasks/upload-customer-match-audience/prepare-data,
  and the Campaign Manager enhanced-conversions guide): email trimmed and lower-cased, and for ``gmail.com`` /
  ``googlemail.com`` every ``.`` before the ``@`` removed; phone in E.164 with the ``+`` and the country code;
  SHA-256 hex. Columns ``Email``, ``Phone`` (the Google Ads customer-list upload takes hashed values in them).
* Meta (https://developers.facebook.com/docs/marketing-api/custom-audience-api, "Hashing and Normalizing
  Data"): email trimmed and lower-cased; phone digits only, with the country code, no ``+``, no leading zeros;
  SHA-256 hex. Columns ``email``, ``phone``.
* Yandex Audience (https://yandex.com/dev/audience/doc/intro/data-requirements.html): header
  ``external_id,phone,email``; phone digits with the country code, no spaces or symbols (``79876543210``);
  email lower-case; each value hashed. Yandex no longer accepts MD5 for new uploads (since January 2025):
  SHA-256 here. ``external_id`` is the shop's own customer id (what the field is for: the CRM's id).
* VK Ads: the format could not be checked against a published VK example. The common one is written: email
  trimmed and lower-cased, phone digits with the country code, SHA-256 hex, columns ``email``, ``phone``.

Phones are read with ``phonenumbers`` in the customer's country (a national ``8 (987) 654-32-10`` in RU is
``+79876543210``); a number it does not find valid is left out, not guessed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.consent.suppression import SuppressionList, address_hash, bare_address_hash
from tasks.kernel.enums import Channel, Table
from tasks.kernel.paths import RunPaths, private_dir
from tasks.kernel.settings import Settings
from tasks.plan.planner import Suppressed, current_suppressions
from tasks.profile.segments import CompiledSegment, load_segments

# The folder of a run where the day's audience files go.
AUDIENCES_FOLDER = "audiences"
# Segments that mean "win them back": a customer who has just bought is left out of their ads.
WIN_BACK_SEGMENTS = frozenset({"lapsed_valuable", "at_risk", "lost"})
# Google folds the dots of these mailboxes' local parts (Customer Match "prepare data").
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


class Platform(StrEnum):
    """An ad platform whose customer-list file this writes."""

    META = "meta"
    GOOGLE = "google"
    VK = "vk"
    YANDEX = "yandex"


# Each platform's file header, in order.
COLUMNS: dict[Platform, tuple[str, ...]] = {
    Platform.META: ("email", "phone"),
    Platform.GOOGLE: ("Email", "Phone"),
    Platform.VK: ("email", "phone"),
    Platform.YANDEX: ("external_id", "phone", "email"),
}
# Which header holds which identifier.
_EMAIL_COLUMN = {Platform.META: "email", Platform.GOOGLE: "Email", Platform.VK: "email", Platform.YANDEX: "email"}
_PHONE_COLUMN = {Platform.META: "phone", Platform.GOOGLE: "Phone", Platform.VK: "phone", Platform.YANDEX: "phone"}

# The order exclusions are counted in (a customer counts under the first that applies).
EXCLUSIONS = ("not_opted_in", "suppressed", "service_recovery", "recent_buyer", "no_identifier")


class AudienceError(ValueError):
    """An audience cannot be made: an unknown segment or platform, a bad setting, a day not run yet."""


# --- normalising and hashing ------------------------------------------------------------------------


def normalise_email(platform: Platform | str, raw: str | None) -> str | None:
    """Return the email as ``platform`` hashes it (trimmed, lower-case; Gmail's dots gone for Google), or None.

    >>> normalise_email("google", " Jane.Doe@GMail.com ")
    'janedoe@gmail.com'
    >>> normalise_email("meta", " Jane.Doe@GMail.com ")
    'jane.doe@gmail.com'
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in text):
        return None
    if Platform(platform) is Platform.GOOGLE and domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def normalise_phone(platform: Platform | str, raw: str | None, country: str | None) -> str | None:
    """Return the phone as ``platform`` hashes it, read in ``country`` (ISO-2) when national; None if not valid.

    Google: E.164 with the ``+`` (``+79876543210``); Meta, VK, Yandex: the same digits without it.

    >>> normalise_phone("yandex", "8 (987) 654-32-10", "RU")
    '79876543210'
    >>> normalise_phone("google", "+48 601 234 567", None)
    '+48601234567'
    """
    if not isinstance(raw, str) or not raw.strip():
        return None
    region = country.strip().upper() if isinstance(country, str) and country.strip() else None
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if Platform(platform) is Platform.GOOGLE else e164.removeprefix("+")


def hashed(value: str) -> str:
    """SHA-256 of the normalised value, lower-case hex: what every platform here takes."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# --- who is in it -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exclusions:
    """Who is left out besides those without ``ads_opt_in``: the suppressions, and recent buyers (win-back only)."""

    suppressed: Suppressed = field(default_factory=Suppressed)
    recent_buyer_days: int | None = None  # None: nobody is left out for buying


def exclusions_for(segment: str, suppressed: Suppressed, recent_buyer_days: int) -> Exclusions:
    """The exclusions of ``segment``'s audience: recent buyers only for a win-back segment."""
    return Exclusions(suppressed, recent_buyer_days if segment in WIN_BACK_SEGMENTS else None)


class AudienceCounts(BaseModel):
    """What went into one audience file: counts only, never an address."""

    segment: str
    platform: Platform
    members: int  # the segment's members on the day
    excluded: dict[str, int]  # by reason, in EXCLUSIONS order
    duplicates: int  # rows whose hashed identifiers an earlier row already has
    exported: int  # rows in the file

    def headline(self) -> str:
        """One line for the log and the terminal: counts only."""
        left_out = ", ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in self.excluded.items() if n)
        return (
            f"{self.segment}-{self.platform.value}: {self.exported} rows from {self.members} members"
            f" (left out: {left_out or 'none'}; duplicates {self.duplicates})"
        )


@dataclass(frozen=True)
class Audience:
    """One platform's file as a frame (its columns, hashed values, blank where unknown) and its counts."""

    rows: pd.DataFrame
    counts: AudienceCounts


def build_audience(
    profile: pd.DataFrame,
    customers: pd.DataFrame,
    segment: CompiledSegment,
    platform: Platform | str,
    as_of: date,
    exclusions: Exclusions,
) -> Audience:
    """Return the segment's ad audience for ``platform``: opted in, not suppressed, not in service recovery,
    no recent buyer (win-back), hashed and de-duplicated."""
    platform = Platform(platform)
    members = profile.loc[segment.evaluate(profile).to_numpy(dtype=bool)]
    wanted = [c for c in ("customer_id", "email", "phone", "country", "ads_opt_in") if c in customers.columns]
    rows = members[["customer_id", "unhappy", "last_order_at"]].merge(
        customers[wanted].drop_duplicates("customer_id"), on="customer_id", how="inner"
    )
    ids = rows["customer_id"].astype(str)
    emails = rows["email"] if "email" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
    phones = rows["phone"] if "phone" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
    countries = rows["country"] if "country" in rows.columns else pd.Series(None, index=rows.index, dtype=object)

    opted = (
        rows["ads_opt_in"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if "ads_opt_in" in rows.columns
        else np.zeros(len(rows), dtype=bool)
    )
    suppressed = _suppressed(ids, emails, phones, exclusions.suppressed)
    recovering = rows["unhappy"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    recent = np.zeros(len(rows), dtype=bool)
    if exclusions.recent_buyer_days is not None:
        last = pd.to_datetime(rows["last_order_at"], utc=True).dt.tz_convert(None).dt.normalize()
        days = (pd.Timestamp(as_of) - last).dt.days
        recent = (days <= exclusions.recent_buyer_days).to_numpy(dtype=bool, na_value=False)
    email_n = pd.Series([normalise_email(platform, e) for e in emails], index=rows.index, dtype=object)
    phone_n = pd.Series(
        [normalise_phone(platform, p, c) for p, c in zip(phones, countries, strict=True)],
        index=rows.index,
        dtype=object,
    )
    reachable = (email_n.notna() | phone_n.notna()).to_numpy(dtype=bool)

    excluded: dict[str, int] = {}
    keep = np.ones(len(rows), dtype=bool)
    for reason, out in zip(EXCLUSIONS, (~opted, suppressed, recovering, recent, ~reachable), strict=True):
        hit = keep & out
        excluded[reason] = int(hit.sum())
        keep &= ~hit

    email_col, phone_col = _EMAIL_COLUMN[platform], _PHONE_COLUMN[platform]
    frame = pd.DataFrame(
        {
            email_col: [hashed(e) if isinstance(e, str) else "" for e in email_n[keep]],
            phone_col: [hashed(p) if isinstance(p, str) else "" for p in phone_n[keep]],
        }
    )
    if platform is Platform.YANDEX:
        frame["external_id"] = ids[keep].to_numpy()
    frame = frame[list(COLUMNS[platform])]
    unique = frame.drop_duplicates([email_col, phone_col]).sort_values([email_col, phone_col], ignore_index=True)
    counts = AudienceCounts(
        segment=segment.name,
        platform=platform,
        members=len(members),
        excluded=excluded,
        duplicates=len(frame) - len(unique),
        exported=len(unique),
    )
    return Audience(unique, counts)


def _suppressed(ids: pd.Series, emails: pd.Series, phones: pd.Series, suppressed: Suppressed) -> np.ndarray:
    """Customers suppressed for marketing on any channel, by id or by an address (any of its stored hashes)."""
    keys = suppressed.hash_keys
    hit = np.zeros(len(ids), dtype=bool)
    for channel, addresses in ((Channel.EMAIL, emails), (Channel.SMS, phones)):
        stopped = suppressed.marketing.get(channel, frozenset())
        if not stopped:
            continue
        hit |= ids.isin(stopped).to_numpy(dtype=bool)
        text = addresses.astype(object).where(addresses.notna(), "").astype(str)
        present = (text != "").to_numpy(dtype=bool)
        for form in (bare_address_hash, *(lambda a, k=k: address_hash(a, k) for k in keys)):
            hit |= present & text.map(form).isin(stopped).to_numpy(dtype=bool)
    return hit


# --- the setting, the files ---------------------------------------------------------------------------

_PAIR = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*:\s*([a-z, ]+)$")


def parse_audiences(text: str) -> list[tuple[str, Platform]]:
    """Read ``LOYALTY_AUDIENCES`` (``lapsed_valuable:meta,google;at_risk:vk``) into (segment, platform) pairs.

    >>> parse_audiences("lapsed_valuable:meta,google")
    [('lapsed_valuable', <Platform.META: 'meta'>), ('lapsed_valuable', <Platform.GOOGLE: 'google'>)]
    """
    pairs: list[tuple[str, Platform]] = []
    for part in (p for p in text.split(";") if p.strip()):
        found = _PAIR.match(part)
        if found is None:
            raise AudienceError(f"LOYALTY_AUDIENCES: {part.strip()!r} is not segment:platform[,platform]")
        for name in (n.strip() for n in found.group(2).split(",") if n.strip()):
            pairs.append((found.group(1), platform_named(name)))
    return list(dict.fromkeys(pairs))


def platform_named(name: str) -> Platform:
    """The platform called ``name``; an error lists the known ones."""
    try:
        return Platform(name.strip().lower())
    except ValueError:
        known = ", ".join(p.value for p in Platform)
        raise AudienceError(f"unknown platform {name!r} (one of: {known})") from None


def segment_named(name: str, segments: Mapping[str, CompiledSegment]) -> CompiledSegment:
    """The segment called ``name``; an error lists the segments of the catalog."""
    if name not in segments:
        raise AudienceError(f"unknown segment {name!r} (campaigns/segments.yaml has: {', '.join(segments)})")
    return segments[name]


def audience_file(paths: RunPaths, segment: str, platform: Platform) -> Path:
    """Where the day's file of a (segment, platform) goes: ``<day>/audiences/<segment>-<platform>.csv``."""
    return paths.root / AUDIENCES_FOLDER / f"{segment}-{platform.value}.csv"


def read_day(paths: RunPaths, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The day's profile and customers table, as the daily run left them; an error says how to make them."""
    customers_file = paths.table(Table.CUSTOMERS)
    if not paths.profile.exists() or not customers_file.exists():
        raise AudienceError(f"{as_of} has no profile yet: run `loyalty run --as-of {as_of}` first")
    return pd.read_parquet(paths.profile), pd.read_parquet(customers_file)


def write_audience(audience: Audience, target: Path) -> Path:
    """Write an audience as CSV (a temporary name, then renamed: never half a file for a sync job to send)."""
    private_dir(target.parent)
    partial = target.with_name(target.name + ".partial")
    audience.rows.to_csv(partial, index=False)
    partial.replace(target)
    return target


def day_audiences(
    paths: RunPaths, as_of: date, settings: Settings, pairs: list[tuple[str, Platform]]
) -> list[Audience]:
    """Build the day's audience of each (segment, platform) from the run folder (already pulled from S3)."""
    catalog = settings.campaigns_dir / "segments.yaml"
    segments = {s.name: s for s in (load_segments(catalog) if catalog.exists() else [])}
    chosen = [(segment_named(name, segments), platform) for name, platform in pairs]  # a bad name: before any work
    if not chosen:
        return []
    profile, customers = read_day(paths, as_of)
    suppressed = current_suppressions(SuppressionList.for_settings(settings))
    return [
        build_audience(
            profile,
            customers,
            segment,
            platform,
            as_of,
            exclusions_for(segment.name, suppressed, settings.audience_recent_buyer_days),
        )
        for segment, platform in chosen
    ]


@task(cache_policy=NO_CACHE)
def write_day_audiences(
    paths: RunPaths, as_of: date, settings: Settings, pairs: list[tuple[str, Platform]]
) -> list[AudienceCounts]:
    """Write the day's audience files into ``<day>/audiences/``; return their counts."""
    written = []
    for audience in day_audiences(paths, as_of, settings, pairs):
        counts = audience.counts
        write_audience(audience, audience_file(paths, counts.segment, counts.platform))
        written.append(counts)
    return written
