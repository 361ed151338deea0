"""The run report: a JSON summary file, the outbox index and Prefect artifacts.

A day whose waves go out as their own ``send-wave`` runs is reported twice over: the daily run writes
the summary with nothing sent yet, and each wave merges into it what it did. Each wave leaves a record,
``delivery/waves/<time>.json`` (its outcome counts and failed shards; inline sends leave them too); the summary's
delivery numbers are always the sum of the records on disk, so waves may finish in any order, and a wave
run again (by hand, or by a Prefect retry) replaces its own record instead of adding to it. Within a wave
run again, a message its earlier attempt sent (or failed) and the ledger now calls ``already_sent`` keeps
the earlier outcome (``merge_outcomes``): the day's summary counts each message once, as what became of it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from tasks.data.snapshot import SnapshotSummary
from tasks.kernel.aws import dynamodb_client
from tasks.kernel.enums import DeliveryOutcome, MessageKind, SkipReason
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.ledger.backend import open_ledger
from tasks.plan.planner import PlanSummary
from tasks.plan.replay import ReplayFilter
from tasks.profile.kpis import Kpis
from tasks.render.outbox import OutboxEntry, OutboxListing, write_index

# "unknown": a lost answer or a crash left the send unknown; a marketing message is then not resent
DELIVERY_OUTCOMES = tuple(DeliveryOutcome)
# The delivery count of shards whose task failed (``flows/waves.py``).
FAILED_SHARDS = "failed_shards"
# The ledger's counts a run reports (``ledger_report``).
LEDGER_COUNTS = ("unknown_in_ledger", "resent_transactional")
# Outcomes a wave run again keeps from its earlier attempt when the ledger now says ``already_sent``.
_DECIDED = (DeliveryOutcome.SENT.value, DeliveryOutcome.FAILED.value)
# The message counts a summary shows, in the order a person reads them.
MESSAGE_COUNTS = (
    "planned",
    "to_send",
    "rendered",
    *DELIVERY_OUTCOMES,
    "holdout",
    "deferred",
    "skipped",
    "unknown_in_ledger",
    "resent_transactional",
)


class RunSummary(BaseModel):
    """What one daily run did, in numbers a person can read. No PII."""

    as_of: date
    dry_run: bool
    customers_loaded: int
    quarantined: int
    quarantined_by_reason: dict[str, dict[str, int]]
    # optional cells emptied for a bad value, the row kept: table -> column -> reason -> cells
    nulled_by_column: dict[str, dict[str, dict[str, int]]] = {}
    rows: dict[str, dict[str, int]]
    segments: dict[str, int]
    planned: int
    to_send: int
    rendered: int
    sent: int
    already_sent: int
    failed: int
    retry_later: int
    parked: int
    held_quiet_hours: int = 0
    suppressed: int = 0  # opted out (or bounced) between planning and sending: not sent
    failed_shards: int = 0  # delivery tasks that failed: their messages go out with a later run
    holdout: int
    deferred: int
    deferred_by_reason: dict[str, int]
    skipped: int
    skipped_by_reason: dict[str, int]
    unknown: int
    sent_by_channel: dict[str, int] = {}
    to_send_by_campaign: dict[str, int] = {}
    kpis: Kpis | None = None
    unknown_in_ledger: int = 0
    resent_transactional: int = 0
    # a filtered replay (``backfill`` with campaigns or channels): what it sends, and what it held back
    replay_filter: dict[str, list[str]] = {}
    held_back: int = 0
    run_dir: str
    outbox_index: str

    def message_counts(self) -> list[tuple[str, int]]:
        """Return (name, count) for every message count, then skipped ones per reason."""
        counts: list[tuple[str, int]] = []
        for name in MESSAGE_COUNTS:
            counts.append((name, int(getattr(self, name))))
            if name == "to_send":
                counts += [(f"to send: {campaign}", n) for campaign, n in self.to_send_by_campaign.items()]
            if name == DeliveryOutcome.SENT and len(self.sent_by_channel) > 1:
                counts += [(f"sent: {channel}", n) for channel, n in self.sent_by_channel.items()]
        counts += [(f"deferred: {reason}", n) for reason, n in self.deferred_by_reason.items()]
        return counts + [(f"skipped: {reason}", n) for reason, n in self.skipped_by_reason.items()]

    def headline(self) -> str:
        """Return the one line that says what happened."""
        if self.dry_run:
            return f"DRY RUN: nothing was sent. {self.rendered} messages rendered to {self.outbox_index}"
        held = f" {self.held_back} held back by the replay filter for their own replay." if self.held_back else ""
        if self.failed_shards:
            held += f" {self.failed_shards} delivery shards FAILED: their messages wait for a later run."
        earlier = self.already_sent + self.skipped_by_reason.get("duplicate", 0)
        if self.sent == 0 and earlier:
            return f"Nothing new to send: {earlier} messages were sent earlier (the ledger remembers).{held}"
        return f"Sent {self.sent} new messages ({self.already_sent} already sent earlier, {self.failed} failed).{held}"


def start_send_progress(total: int) -> str | None:
    """Create the progress artifact that delivery moves while a long send runs."""
    if total == 0:
        return None
    return str(create_progress_artifact(progress=0.0, description=f"Sending {total} messages"))


@task(cache_policy=NO_CACHE)
def ledger_report(settings: Settings, run_id: str, paths: RunPaths) -> dict[str, int]:
    """List crash-left entries (UNKNOWN: marketing never resent) and transactional resends in ``ledger.csv``."""
    ledger = open_ledger(settings, dynamodb_client)
    try:
        unknown = ledger.expire()
        resent = [e for e in ledger.entries(run_id) if e.attempts > 1 and e.kind == MessageKind.TRANSACTIONAL.value]
    finally:
        ledger.close()
    rows = [
        {
            "key": e.key,
            "customer_id": e.customer_id,
            "channel": e.channel,
            "kind": e.kind,
            "status": e.status,
            "attempts": e.attempts,
            "note": note,
        }
        for note, entries in (("unknown: not resent", unknown), ("resent after a crash", resent))
        for e in entries
    ]
    pd.DataFrame(rows, columns=["key", "customer_id", "channel", "kind", "status", "attempts", "note"]).to_csv(
        paths.root / "ledger.csv", index=False
    )
    return {"unknown_in_ledger": len(unknown), "resent_transactional": len(resent)}


def collect_outbox(paths: RunPaths, shards: list[int]) -> OutboxListing:
    """Read what every render shard wrote to the outbox, out of how many messages it rendered.

    A shard that wrote a sample (``Settings.outbox_sample``) wrote exactly that many of each campaign, channel
    and language it had more of: the listing's ``sample`` is read off those groups.
    """
    entries: list[OutboxEntry] = []
    rendered = sample = 0
    for shard in shards:
        frame = pd.read_parquet(
            paths.rendered_shard(shard),
            columns=["idempotency_key", "customer_id", "campaign", "channel", "locale", "html_file", "text_file"],
        )
        rendered += len(frame)
        written = (frame["text_file"].fillna("") != "").to_numpy()
        if not written.all():
            groups = frame.assign(written=written).groupby(["campaign", "channel", "locale"])["written"]
            counts = groups.agg(["sum", "size"])
            sample = max(sample, int(counts.loc[counts["sum"] < counts["size"], "sum"].max()))
        entries.extend(
            OutboxEntry(
                key=r[0], customer_id=r[1], campaign=r[2], channel=r[3], locale=r[4], html_file=r[5], text_file=r[6]
            )
            for r in frame.loc[written].itertuples(index=False)
        )
    record = paths.rendered_shard(0).parent.relative_to(paths.root) / "rendered-*.parquet"
    return OutboxListing(entries, rendered, sample, record.as_posix())


def sent_by_channel(paths: RunPaths, shards: list[int]) -> dict[str, int]:
    """Count the messages sent in this run per channel, from the delivery outcome files."""
    files = [paths.delivery_shard(s) for s in shards if paths.delivery_shard(s).exists()]
    if not files:
        return {}
    outcomes = pd.concat([pd.read_parquet(f, columns=["channel", "outcome"]) for f in files], ignore_index=True)
    sent = outcomes.loc[outcomes["outcome"] == DeliveryOutcome.SENT, "channel"].value_counts().sort_index()
    return {str(k): int(v) for k, v in sent.items()}


def build_summary(
    as_of: date,
    dry_run: bool,
    paths: RunPaths,
    snapshot: SnapshotSummary,
    segments: dict[str, int],
    plan: PlanSummary,
    rendered: int,
    delivery: Counter[str],
    ledger: dict[str, int] | None = None,
    kpis: Kpis | None = None,
    only: ReplayFilter | None = None,
) -> RunSummary:
    """Put every step's numbers into one summary; ``only``: the filter of a filtered replay."""
    return RunSummary(
        as_of=as_of,
        dry_run=dry_run,
        customers_loaded=snapshot.customers,
        quarantined=snapshot.quarantined,
        quarantined_by_reason=snapshot.quarantined_by_reason,
        nulled_by_column=snapshot.nulled_by_column,
        rows=snapshot.rows,
        segments=segments,
        planned=plan.planned,
        to_send=plan.to_send,
        to_send_by_campaign=plan.to_send_by_campaign,
        rendered=rendered,
        holdout=plan.by_decision.get("holdout", 0),
        deferred=plan.by_decision.get("deferred", 0),
        deferred_by_reason=plan.deferred_by_reason,
        skipped=sum(plan.skipped_by_reason.values()),
        skipped_by_reason=plan.skipped_by_reason,
        run_dir=str(paths.root),
        sent_by_channel={} if dry_run else sent_by_channel(paths, plan.shards),
        kpis=kpis,
        replay_filter=only.describe() if only else {},
        held_back=plan.deferred_by_reason.get(SkipReason.HELD_BACK.value, 0),
        **(ledger or {}),
        outbox_index=str(paths.outbox / "index.html"),
        **{k: int(delivery.get(k, 0)) for k in (*DELIVERY_OUTCOMES, FAILED_SHARDS)},
    )


class WaveRecord(BaseModel):
    """What one wave did, the last time it went: its outcome counts, ``failed_shards`` too."""

    at: datetime
    shards: list[int]
    delivery: dict[str, int] = Field(default_factory=dict)


def wave_record_file(paths: RunPaths, at: datetime) -> Path:
    """Where a wave's record lives: one file per wave time, so a wave run again overwrites its own."""
    return paths.root / "delivery" / "waves" / f"{at:%Y%m%dT%H%M}.json"


def write_wave_record(paths: RunPaths, record: WaveRecord) -> None:
    """Write (or replace) a wave's record."""
    target = wave_record_file(paths, record.at)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_wave_records(paths: RunPaths) -> list[WaveRecord]:
    """Read the records of every wave that went out, in time order."""
    folder = paths.root / "delivery" / "waves"
    files = sorted(folder.glob("*.json")) if folder.exists() else []
    return [WaveRecord.model_validate_json(f.read_text(encoding="utf-8")) for f in files]


def wave_totals(records: Iterable[WaveRecord]) -> Counter[str]:
    """Sum the waves' outcome counts; one record per wave, in any order."""
    delivery: Counter[str] = Counter()
    for record in records:
        delivery.update(record.delivery)
    return delivery


def merge_waves(
    summary: RunSummary, records: Iterable[WaveRecord], by_channel: dict[str, int], ledger: dict[str, int]
) -> RunSummary:
    """Return the day's summary with its delivery numbers the sum of its waves' records.

    ``ledger``: what this wave's ``ledger_report`` found, added to the day's: entries expire once, and
    transactional resends are counted per run, so those counts add up where outcomes are replaced.
    """
    delivery = wave_totals(records)
    counts = {k: int(delivery.get(k, 0)) for k in (*DELIVERY_OUTCOMES, FAILED_SHARDS)}
    counts |= {k: int(getattr(summary, k)) + int(ledger.get(k, 0)) for k in LEDGER_COUNTS}
    return summary.model_copy(update={**counts, "sent_by_channel": by_channel})


def merge_outcomes(earlier: pd.DataFrame | None, current: pd.DataFrame) -> pd.DataFrame:
    """Return a shard's outcomes after it went again: what the earlier attempt sent or failed stays so.

    The ledger answers ``already_sent`` for a message an earlier attempt of the same wave sent or
    marked failed; that answer is about the attempt, not the message, so the earlier outcome is kept.
    """
    if earlier is None or earlier.empty:
        return current
    decided = earlier.loc[earlier["outcome"].isin(_DECIDED)].drop_duplicates("key").set_index("key")
    merged = current.copy()
    keep = merged["outcome"].eq(DeliveryOutcome.ALREADY_SENT.value) & merged["key"].isin(decided.index)
    if keep.any():
        rows = decided.loc[merged.loc[keep, "key"]]
        for column in merged.columns:
            if column != "key" and column in rows.columns:
                merged.loc[keep, column] = rows[column].to_numpy()
    return merged


def read_outcomes(paths: RunPaths, shards: Iterable[int]) -> dict[int, pd.DataFrame]:
    """Read the outcome files the shards have from an earlier attempt (before they go again)."""
    return {s: pd.read_parquet(paths.delivery_shard(s)) for s in shards if paths.delivery_shard(s).exists()}


@task(cache_policy=NO_CACHE)
def settle_wave(
    paths: RunPaths, at: datetime, shards: list[int], earlier: dict[int, pd.DataFrame], failed_shards: int
) -> WaveRecord:
    """Keep what an earlier attempt of the wave sent in its outcome files, count them, and record the wave.

    The caller holds the day's folder (``RunPaths.exclusive``).
    """
    delivery: Counter[str] = Counter()
    for shard in shards:
        target = paths.delivery_shard(shard)
        if not target.exists():
            continue
        current = pd.read_parquet(target)
        merged = merge_outcomes(earlier.get(shard), current)
        if merged is not current:
            merged.to_parquet(target, index=False)
        delivery.update({str(k): int(v) for k, v in merged["outcome"].value_counts().items()})
    if failed_shards:
        delivery[FAILED_SHARDS] = failed_shards
    record = WaveRecord(at=at, shards=shards, delivery=dict(delivery))
    write_wave_record(paths, record)
    return record


def summary_markdown(summary: RunSummary) -> str:
    """Render the summary as the markdown shown in the Prefect UI."""
    lines = [f"# Daily run {summary.as_of}", "", f"**{summary.headline()}**", "", "## Data", ""]
    lines += ["| table | input | clean | quarantined | after as_of |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {t} | {c['input']} | {c['clean']} | {c['quarantined']} | {c['future']} |" for t, c in summary.rows.items()
    ]
    if summary.quarantined:
        lines += ["", "Quarantined rows by reason (see `quarantine.csv`):", ""]
        for table, reasons in summary.quarantined_by_reason.items():
            lines += [f"- {table}: " + ", ".join(f"{r} {n}" for r, n in reasons.items())]
    if summary.nulled_by_column:
        lines += ["", "Cells emptied for a bad optional value, the row kept (see `nulled_cells.csv`):", ""]
        for table, columns in summary.nulled_by_column.items():
            cells = (f"{column} {reason} {n}" for column, reasons in columns.items() for reason, n in reasons.items())
            lines += [f"- {table}: " + ", ".join(cells)]
    lines += ["", "## Segments", "", "| segment | customers |", "|---|---:|"]
    lines += [f"| {s} | {n} |" for s, n in summary.segments.items()]
    lines += ["", "## Messages", "", "| outcome | messages |", "|---|---:|"]
    lines += [f"| {name} | {n} |" for name, n in summary.message_counts()]
    return "\n".join(lines) + "\n"


@task(cache_policy=NO_CACHE)
def report_run(summary: RunSummary, paths: RunPaths, shards: list[int]) -> RunSummary:
    """Write the outbox index, the JSON summary and the run's Prefect artifacts."""
    write_index(paths.outbox, collect_outbox(paths, shards), f"Outbox {summary.as_of}")
    paths.summary.write_text(json.dumps(summary.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    key = "daily-run"
    create_markdown_artifact(markdown=summary_markdown(summary), key=key, description=summary.headline())
    create_table_artifact(
        table=[{"segment": s, "customers": n} for s, n in summary.segments.items()],
        key=f"{key}-segments",
        description="Customers per segment",
    )
    return summary


@task(cache_policy=NO_CACHE)
def report_wave(paths: RunPaths, shards: list[int], ledger: dict[str, int]) -> RunSummary:
    """Merge every wave's record (and this wave's ledger counts) into the day's summary file and artifact.

    The caller holds the day's folder (``RunPaths.exclusive``): two waves never rewrite the summary at once.
    """
    summary = RunSummary.model_validate_json(paths.summary.read_text(encoding="utf-8"))
    summary = merge_waves(summary, read_wave_records(paths), sent_by_channel(paths, shards), ledger)
    paths.summary.write_text(json.dumps(summary.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    create_markdown_artifact(markdown=summary_markdown(summary), key="daily-run", description=summary.headline())
    return summary
