"""Support's call list: the customers worth a phone call about something that went wrong, and what support heard.

Who is on the day's list (``select_calls``), one row per open incident (``tasks/profile/unhappy.py``; an
incident is open for ``call_list_days`` after its day):

* a VIP, or a customer in the top tenth by predicted value, with an open incident;
* anyone with two incidents or more in 30 days.

Who is not: the incidents support already reached the customer about or resolved; those called
``call_attempts`` times without an answer; every incident of a customer who said they want no contact.
Nobody stays for good: an incident leaves the list ``call_list_days`` after it happened (``LOYALTY_CALL_LIST_DAYS``,
30) or after ``LOYALTY_CALL_ATTEMPTS`` (3) calls without an answer, whichever comes first.

Each row says what support needs to call: first name, the phone (only where the customer gave one), locale,
the order, what went wrong and when, the messages already sent about it (the incident campaigns' send history,
the day's plan included), the coupon offered with them, and the customer's value; ordered by predicted value.
The daily run writes it to ``<run>/service/call_list.csv`` (the private run folder: it holds phones) and a
Prefect table artifact with no phone and no name. ``loyalty calls list`` prints it (``call_list``: the
same function), ``loyalty calls record FILE`` reads the list returned with an ``outcome`` column
(``read_outcomes``) and records it (``record_calls``): ``resolved`` closes the incident (service recovery
stops for it, ``tasks/plan/triggers.py``), ``wants_no_contact`` suppresses the customer's marketing on every
channel (order and service messages go on) and takes them off the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.data.snapshot import read_table
from tasks.kernel.aws import dynamodb_client
from tasks.kernel.enums import Table, Topic
from tasks.kernel.paths import RunPaths, detail_file
from tasks.kernel.settings import Settings
from tasks.plan.campaigns import IncidentTrigger, load_catalog
from tasks.plan.history import marketing_history
from tasks.plan.triggers import incident_keys
from tasks.profile.features import customers_local_day
from tasks.state.backend import open_state
from tasks.state.calls import CallOutcome, CallRecord, incident_of

CALL_COLUMNS = (
    "list_day",
    "customer_id",
    "first_name",
    "phone",
    "locale",
    "why",
    "order_id",
    "incident",
    "reason",
    "at",
    "messages",
    "coupon",
    "percent_off",
    "lifetime_value",
    "predicted_value",
    "attempts",
    "outcome",
    "note",
    "called_at",
)
# The columns the Prefect artifact shows: no phone, no name (the UI is not the private run folder).
ARTIFACT_COLUMNS = ("customer_id", "why", "locale", "order_id", "reason", "at", "messages", "coupon", "attempts")
# The columns of the profile and of the customers table the list reads.
PROFILE_COLUMNS = ("customer_id", "vip", "predicted_clv", "monetary_total", "orders")
CUSTOMER_COLUMNS = ("customer_id", "timezone", "first_name", "phone", "locale")
# Outcomes after which an incident needs no further call.
_DONE = (CallOutcome.REACHED.value, CallOutcome.RESOLVED.value)


@dataclass(frozen=True)
class CallRules:
    """Who is worth a call, and when they leave the list."""

    list_days: int = 30  # an incident leaves the list this many days after its day
    attempts: int = 3  # ... or after this many calls without an answer
    top_value_share: float = 0.10  # the top tenth of buyers by predicted value
    repeat_incidents: int = 2  # anyone with this many incidents ...
    repeat_window_days: int = 30  # ... within this many days

    @classmethod
    def from_settings(cls, settings: Settings) -> CallRules:
        return cls(list_days=settings.call_list_days, attempts=settings.call_attempts)


def _value(profile: pd.DataFrame) -> pd.Series:
    """Predicted value, else what was spent (no prediction this run), indexed by customer."""
    value = profile["predicted_clv"].astype("Float64").fillna(profile["monetary_total"].astype("Float64"))
    return pd.Series(value.to_numpy(dtype=float, na_value=np.nan), index=profile["customer_id"].astype(str))


def select_calls(
    profile: pd.DataFrame,
    incidents: pd.DataFrame,
    customers: pd.DataFrame,
    calls: pd.DataFrame,
    sent: pd.DataFrame,
    coupons: pd.DataFrame,
    as_of: date,
    rules: CallRules = CallRules(),
) -> pd.DataFrame:
    """Return the day's call list (``CALL_COLUMNS``), most valuable customer first.

    ``calls``: (customer_id, incident, outcome) of every call recorded; ``sent``: (customer_id, campaign, step,
    occurrence, day) of the incident campaigns' messages; ``coupons``: (code, customer_id, occurrence, percent_off)
    of their codes. The profile gives ``vip``, ``predicted_clv``, ``monetary_total`` and ``orders``.
    """
    if incidents.empty:
        return pd.DataFrame(columns=list(CALL_COLUMNS))
    found = incidents.reset_index(drop=True)
    day = customers_local_day(pd.to_datetime(found["at"], utc=True), found["customer_id"], customers)
    day = day.reset_index(drop=True)  # by position, as ``found``
    found = found.assign(
        customer_id=found["customer_id"].astype(str), day=pd.to_datetime(day.to_numpy()).strftime("%Y-%m-%d")
    )
    age = (pd.Timestamp(as_of) - pd.to_datetime(found["day"])).dt.days
    found = found.loc[(age >= 0).to_numpy()].assign(age=age)
    # who is worth a call
    value = _value(profile)
    buyers = profile.set_index(profile["customer_id"].astype(str))["orders"].fillna(0) > 0
    cutoff = value[buyers].dropna().quantile(1 - rules.top_value_share) if buyers.any() else np.inf
    vip = set(profile.loc[profile["vip"].fillna(False).astype(bool), "customer_id"].astype(str))
    top = set(value.index[(value >= cutoff).to_numpy() & buyers.to_numpy()])
    recent = found.loc[found["age"] <= rules.repeat_window_days, "customer_id"].value_counts()
    repeat = set(recent.index[recent >= rules.repeat_incidents])
    why = {
        c: ", ".join(
            w for w, hit in (("vip", c in vip), ("top value", c in top), ("repeat incidents", c in repeat)) if hit
        )
        for c in set(found["customer_id"])
    }
    rows = found.loc[(found["age"] <= rules.list_days).to_numpy()]
    rows = rows.loc[[bool(why[c]) for c in rows["customer_id"]]]
    # keys of the listed incidents only (a Python string each): not of the whole history of incidents
    rows = rows.assign(incident=incident_keys(rows, day.loc[rows.index]))
    # who is not: asked for no contact; reached or resolved about this incident; too many calls unanswered
    said = calls.astype({"customer_id": str, "incident": str, "outcome": str})
    no_contact = set(said.loc[said["outcome"] == CallOutcome.WANTS_NO_CONTACT.value, "customer_id"])
    pairs = list(zip(rows["customer_id"], rows["incident"], strict=True))
    done = set(zip(*(said.loc[said["outcome"].isin(_DONE), c] for c in ("customer_id", "incident")), strict=True))
    unanswered = said.loc[said["outcome"] == CallOutcome.NO_ANSWER.value].groupby(["customer_id", "incident"]).size()
    attempts = [int(unanswered.get(p, 0)) for p in pairs]
    keep = [
        p[0] not in no_contact and p not in done and n < rules.attempts for p, n in zip(pairs, attempts, strict=True)
    ]
    rows = rows.assign(attempts=attempts).loc[keep]
    if rows.empty:
        return pd.DataFrame(columns=list(CALL_COLUMNS))
    people = customers.assign(customer_id=customers["customer_id"].astype(str)).set_index("customer_id")
    listed = people.reindex(rows["customer_id"])  # each row's customer (none: an unknown id)
    phones = listed["phone"].where(listed["phone"].notna(), "").astype(str).str.strip().to_numpy()
    messages = _messages(sent)
    offered = _coupons(coupons)
    spent = profile.set_index(profile["customer_id"].astype(str))["monetary_total"]
    out = pd.DataFrame(
        {
            "list_day": as_of.isoformat(),
            "customer_id": rows["customer_id"].to_numpy(),
            "first_name": [_text(name) for name in listed["first_name"]],
            "phone": [
                phone if c not in no_contact else "" for c, phone in zip(rows["customer_id"], phones, strict=True)
            ],
            "locale": [_text(locale) for locale in listed["locale"]],
            "why": [why[c] for c in rows["customer_id"]],
            "order_id": [_text(o) for o in rows["order_id"]],
            "incident": rows["incident"].to_numpy(),
            "reason": rows["reason"].astype(str).to_numpy(),
            "at": rows["day"].to_numpy(),
            "messages": [messages.get((c, d), "") for c, d in zip(rows["customer_id"], rows["day"], strict=True)],
            "coupon": [offered.get((c, d), ("", ""))[0] for c, d in zip(rows["customer_id"], rows["day"], strict=True)],
            "percent_off": [
                offered.get((c, d), ("", ""))[1] for c, d in zip(rows["customer_id"], rows["day"], strict=True)
            ],
            "lifetime_value": [_money(spent.get(c)) for c in rows["customer_id"]],
            "predicted_value": [_money(value.get(c)) for c in rows["customer_id"]],
            "attempts": rows["attempts"].to_numpy(),
            "outcome": "",
            "note": "",
            "called_at": "",
        }
    )
    order = np.lexsort((out["at"].to_numpy(dtype=str), -np.nan_to_num(out["predicted_value"].to_numpy(float), nan=-1)))
    return out.iloc[order].reset_index(drop=True)


def _text(value: object) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)  # type: ignore[call-overload]


def _money(value: object) -> float:
    return float("nan") if value is None or pd.isna(value) else round(float(value), 2)  # type: ignore[call-overload,arg-type]


def _messages(sent: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Per (customer, occurrence): the messages sent about it, ``campaign step N on DAY``, oldest first."""
    out: dict[tuple[str, str], list[str]] = {}
    for row in sent.sort_values("day").itertuples(index=False):
        said = f"{row.campaign} step {row.step} on {pd.Timestamp(str(row.day)).date().isoformat()}"
        out.setdefault((str(row.customer_id), str(row.occurrence)), []).append(said)
    return {k: "; ".join(dict.fromkeys(v)) for k, v in out.items()}


def _coupons(coupons: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    """Per (customer, occurrence): the code offered and its discount (percent)."""
    return {
        (str(r.customer_id), str(r.occurrence)): (str(r.code), f"{float(str(r.percent_off)):g}")
        for r in coupons.itertuples(index=False)
    }


def call_list(paths: RunPaths, as_of: date, settings: Settings) -> pd.DataFrame:
    """Build the day's call list from the run's profile, the recorded calls and what was sent (one orchestration:
    the daily run and ``loyalty calls list`` both call it)."""
    rules = CallRules.from_settings(settings)
    incidents_file = detail_file(paths.profile, "incidents")
    if not incidents_file.exists():
        return pd.DataFrame(columns=list(CALL_COLUMNS))
    state = open_state(settings, dynamodb_client)
    campaigns = {n for n, c in load_catalog(settings.campaigns_dir).items() if isinstance(c.trigger, IncidentTrigger)}
    sent = marketing_history(settings.output_dir, as_of, days=rules.list_days, store=state.history)
    sent = sent.loc[sent["campaign"].isin(campaigns).to_numpy()]
    first = as_of - timedelta(days=rules.list_days)
    codes = pd.DataFrame(
        [
            (r.code, r.customer_id, r.occurrence, r.percent_off)
            for r in state.coupons.codes(first, as_of)
            if r.campaign in campaigns
        ],
        columns=["code", "customer_id", "occurrence", "percent_off"],
    )
    if paths.coupons.exists():  # today's codes (a dry run keeps them in its folder only)
        today = pd.read_csv(paths.coupons, dtype=str, keep_default_na=False)
        today = today.loc[today["campaign"].isin(campaigns), ["code", "customer_id", "occurrence", "percent_off"]]
        codes = pd.concat([codes, today], ignore_index=True).drop_duplicates("code")
    calls = pd.DataFrame(
        [(r.customer_id, r.incident, r.outcome.value) for r in state.calls.outcomes()],
        columns=["customer_id", "incident", "outcome"],
    )
    return select_calls(
        pd.read_parquet(paths.profile, columns=list(PROFILE_COLUMNS)),
        pd.read_parquet(incidents_file),
        read_table(paths, Table.CUSTOMERS, list(CUSTOMER_COLUMNS)),
        calls,
        sent,
        codes,
        as_of,
        rules,
    )


def write_call_list(frame: pd.DataFrame, path: Path) -> None:
    """Write the call list CSV (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    frame.to_csv(partial, index=False)
    partial.replace(path)


def read_call_list(path: Path) -> pd.DataFrame:
    """Read a call list CSV as written (every column text)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@task(cache_policy=NO_CACHE)
def report_calls(paths: RunPaths, as_of: date, settings: Settings) -> int:
    """Write support's call list of the day and its table artifact (no phones, no names); return its length."""
    frame = call_list(paths, as_of, settings)
    write_call_list(frame, paths.call_list)
    table, description = call_list_artifact(frame, as_of)
    create_table_artifact(table=table, key="call-list", description=description)
    return len(frame)


# Rows of the call list the artifact shows: a big shop's list runs to tens of thousands, which Prefect's event
# bus refuses (over 1.5 MB: its automations never hear of it) and its UI cannot page through.
ARTIFACT_ROWS = 500


def call_list_artifact(frame: pd.DataFrame, as_of: date) -> tuple[list[dict[str, str]], str]:
    """The call list's artifact: its first ``ARTIFACT_ROWS`` rows (most valuable first), no phones or names."""
    shown = frame[list(ARTIFACT_COLUMNS)].head(ARTIFACT_ROWS)
    table = [{str(c): _text(v) for c, v in row.items()} for row in shown.to_dict("records")]
    first = f"; the first {len(shown)} here" if len(shown) < len(frame) else ""
    description = (
        f"Customers worth a call on {as_of}: {len(frame)} incidents, most valuable first{first}. No phones and no "
        "names here: support reads them in service/call_list.csv in the private run folder."
    )
    return table, description


class CallsRecorded(BaseModel):
    """What recording a returned call list did (counts only)."""

    rows: int
    recorded: int
    resolved: int
    no_contact_suppressed: int


class CallFileError(ValueError):
    """A returned call list that cannot be recorded; the message names the line, never a phone or a name."""


def read_outcomes(path: Path, today: date) -> list[CallRecord]:
    """The calls in a returned call list: rows with an ``outcome``, each checked (first bad line: an error).

    Columns: ``customer_id``, ``incident`` (the list's key), ``outcome`` (reached, no answer, resolved, wants no
    contact; case, spaces and hyphens free), optional ``note`` and ``called_at`` (an ISO date or time; else the
    list's ``list_day``, else ``today``). Rows whose outcome is empty were not called and are skipped.
    """
    try:
        frame = read_call_list(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CallFileError(f"{path.name}: not a readable CSV ({type(exc).__name__})") from None
    missing = [c for c in ("customer_id", "incident", "outcome") if c not in frame.columns]
    if missing:
        raise CallFileError(f"{path.name}: missing column(s) {', '.join(missing)}")
    records = []
    for number, row in enumerate(frame.to_dict("records"), start=2):  # line 1 is the header
        said = str(row["outcome"]).strip().lower().replace("-", "_").replace(" ", "_")
        if not said:
            continue
        where = f"{path.name} line {number}"
        if said not in {o.value for o in CallOutcome}:
            raise CallFileError(f"{where}: outcome must be one of {', '.join(o.value for o in CallOutcome)}")
        customer, incident = str(row["customer_id"]).strip(), str(row["incident"]).strip()
        if not customer:
            raise CallFileError(f"{where}: customer_id is empty")
        if not _valid_incident(incident):
            raise CallFileError(f"{where}: incident is not a key from the call list (DAY:reason:order)")
        called = str(row.get("called_at") or "").strip() or str(row.get("list_day") or "").strip() or today.isoformat()
        try:
            datetime.fromisoformat(called)
        except ValueError:
            raise CallFileError(f"{where}: called_at is not an ISO date or time") from None
        records.append(CallRecord(customer, incident, CallOutcome(said), called, str(row.get("note") or "")))
    return records


def _valid_incident(key: str) -> bool:
    try:
        day, reason = incident_of(key)
        date.fromisoformat(day)
    except ValueError:
        return False
    return bool(reason)


def record_calls(settings: Settings, records: list[CallRecord]) -> CallsRecorded:
    """Record calls; a customer who wants no contact is suppressed from marketing on every channel."""
    state = open_state(settings, dynamodb_client)
    recorded = state.calls.record(records)
    suppressions = SuppressionList.for_settings(settings)
    no_contact = sorted({r.customer_id for r in records if r.outcome is CallOutcome.WANTS_NO_CONTACT})
    added = sum(
        suppressions.add_customer(None, c, SuppressionReason.CALL_NO_CONTACT, topic=Topic.MARKETING) for c in no_contact
    )
    return CallsRecorded(
        rows=len(records),
        recorded=recorded,
        resolved=sum(r.outcome is CallOutcome.RESOLVED for r in records),
        no_contact_suppressed=added,
    )
