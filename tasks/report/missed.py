"""What a day planned to send and never sent, and why: the report behind ``loyalty missed``.

A day's folder holds its last run (``plan/plan.parquet``, ``delivery/outcomes-*.parquet``, ``summary.json``)
and every earlier run of the same day under ``earlier/<n>/`` (``RunPaths.reset``). A message is *planned*
when a real (not dry) run of the day decided to send it, or held it back for a filtered replay. It is
*missed* unless the send ledger holds it as sent (whichever run, or a later day, sent it). Its reason:

* the ledger's final word first: ``failed`` (refused for good), ``unknown`` (nobody knows if it went:
  marketing is never resent), ``claimed`` (a send in flight, or a crash the lease has not expired yet);
* else what the latest run that decided about it says: its delivery outcome (``parked``, ``retry_later``,
  ``held_quiet_hours``, ``suppressed`` ...), ``not_attempted`` when it was to send but has no outcome (the
  wave never ran: a crash, a stopped flow), or the plan's reason when a re-plan stopped it (``too_late``,
  ``suppressed`` ...); a row a filtered replay held back defers to the run before it, else ``held_back``.

Only the reasons a replay can change get a replay command (``loyalty backfill`` of that day, campaign and
channel): the ledger makes the replay send each missed message at most once and nothing sent twice.
No addresses or names: rows are counted per day, campaign, channel and reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from tasks.kernel.enums import Decision, DeliveryOutcome, SendStatus, SkipReason
from tasks.kernel.paths import RunPaths

NOT_ATTEMPTED = "not_attempted"  # planned to send, no delivery outcome: the wave never ran
# Reasons a replay of the day can change: the claim was released, or never taken.
REPLAYABLE = frozenset(
    {
        NOT_ATTEMPTED,
        SkipReason.HELD_BACK.value,
        DeliveryOutcome.PARKED.value,
        DeliveryOutcome.RETRY_LATER.value,
        DeliveryOutcome.HELD_QUIET_HOURS.value,
    }
)
# Outcomes that mean the message went (this run, or an earlier one the ledger remembers).
WENT = frozenset({DeliveryOutcome.SENT.value, DeliveryOutcome.ALREADY_SENT.value})
# Ledger statuses that decide the reason whatever the runs recorded.
LEDGER_REASONS = {
    SendStatus.FAILED: SendStatus.FAILED.value,
    SendStatus.UNKNOWN: SendStatus.UNKNOWN.value,
    SendStatus.CLAIMED: SendStatus.CLAIMED.value,
}
_PLAN_COLUMNS = ["idempotency_key", "campaign", "channel", "decision", "reason"]


@dataclass(frozen=True)
class RunRecord:
    """What one run of a day left: its plan rows and its delivery outcomes (key, outcome)."""

    plan: pd.DataFrame
    outcomes: pd.DataFrame


class MissedGroup(BaseModel):
    """Messages of one day, campaign and channel missed for one reason; the command that replays them."""

    day: date
    campaign: str
    channel: str
    reason: str
    messages: int
    replay: str | None


def day_runs(output_dir: Path, day: date) -> list[RunRecord]:
    """Read every real run of a day, oldest first (``earlier/1``, ``earlier/2`` ..., then the last run).

    Dry runs and runs without a plan are left out: they planned nothing that was meant to go.
    """
    current = RunPaths.for_day(output_dir, day)
    earlier = sorted(
        (p for p in current.earlier.iterdir() if p.name.isdigit()) if current.earlier.is_dir() else [],
        key=lambda p: int(p.name),
    )
    runs = []
    for paths in [*(RunPaths(root=p) for p in earlier), current]:
        if not paths.plan.is_file() or _dry_run(paths):
            continue
        plan = pd.read_parquet(paths.plan, columns=_PLAN_COLUMNS)
        files = sorted((paths.root / "delivery").glob("outcomes-*.parquet"))
        outcomes = (
            pd.concat([pd.read_parquet(f, columns=["key", "outcome"]) for f in files], ignore_index=True)
            if files
            else pd.DataFrame({"key": pd.Series(dtype=object), "outcome": pd.Series(dtype=object)})
        )
        runs.append(RunRecord(plan=plan, outcomes=outcomes))
    return runs


def _dry_run(paths: RunPaths) -> bool:
    if not paths.summary.is_file():
        return False  # a run that stopped before its summary may have sent: count it
    return bool(json.loads(paths.summary.read_text(encoding="utf-8")).get("dry_run", False))


def missed_messages(
    runs: Sequence[RunRecord], statuses: Callable[[Iterable[str]], dict[str, SendStatus]]
) -> pd.DataFrame:
    """One row per missed message of a day: key, campaign, channel, reason (runs oldest first).

    ``statuses``: the send ledger's status of each key it holds among the given ones.
    """
    columns = ["idempotency_key", "campaign", "channel", "reason"]
    if not runs:
        return pd.DataFrame(columns=columns)
    frames = []
    for number, run in enumerate(runs):
        last_outcome = run.outcomes.drop_duplicates("key", keep="last").rename(columns={"key": "idempotency_key"})
        rows = run.plan.merge(last_outcome, on="idempotency_key", how="left").assign(run=number)
        frames.append(rows)
    rows = pd.concat(frames, ignore_index=True)
    rows["reason"] = rows["reason"].fillna("").astype(str)
    held = (rows["decision"] == Decision.DEFERRED.value) & (rows["reason"] == SkipReason.HELD_BACK.value)
    planned = set(rows.loc[(rows["decision"] == Decision.SEND.value) | held, "idempotency_key"].astype(str))
    went = set(rows.loc[rows["outcome"].isin(WENT), "idempotency_key"].astype(str))
    ledger = statuses(sorted(planned))
    open_keys = {k for k in planned - went if ledger.get(k) is not SendStatus.SENT}
    if not open_keys:
        return pd.DataFrame(columns=columns)
    rows = rows.loc[rows["idempotency_key"].astype(str).isin(open_keys)]
    # the latest run that decided about each key; a held-back row leaves it to the run before
    deciding = rows.loc[~held.loc[rows.index]].sort_values("run").drop_duplicates("idempotency_key", keep="last")
    sending = deciding["decision"] == Decision.SEND.value
    reason = deciding["reason"].where(~sending, deciding["outcome"].fillna(NOT_ATTEMPTED).astype(str))
    found = dict(zip(deciding["idempotency_key"].astype(str), reason, strict=True))
    first = rows.drop_duplicates("idempotency_key", keep="last").set_index("idempotency_key")
    out = []
    for key in sorted(open_keys):
        status = ledger.get(key)
        why = LEDGER_REASONS.get(status) if status is not None else None
        out.append(
            (key, str(first.at[key, "campaign"]), str(first.at[key, "channel"]), why or found.get(key) or "held_back")
        )
    return pd.DataFrame(out, columns=columns)


def replay_command(day: date, campaign: str, channel: str) -> str:
    """The command that replays one day's messages of one campaign on one channel."""
    return f"loyalty backfill --from {day} --to {day} --campaign {campaign} --channel {channel}"


def missed_groups(day: date, missed: pd.DataFrame) -> list[MissedGroup]:
    """Count a day's missed messages per campaign, channel and reason, each with its replay command (if any)."""
    if missed.empty:
        return []
    counts = missed.groupby(["campaign", "channel", "reason"], sort=True).size().reset_index(name="messages")
    return [
        MissedGroup(
            day=day,
            campaign=str(campaign),
            channel=str(channel),
            reason=str(reason),
            messages=int(n),
            replay=replay_command(day, str(campaign), str(channel)) if reason in REPLAYABLE else None,
        )
        for campaign, channel, reason, n in counts.itertuples(index=False)
    ]
