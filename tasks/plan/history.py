"""Send history: what each customer was sent (and held out of) on earlier days, by the day it went out.

For the frequency budget (marketing, counted on the day a message really goes out: a backfill of
yesterday run today counts today), the pause after service recovery, and holdouts (decided once per
occurrence). Kept on the state backend (``tasks/state``: ``record_history`` when a plan is committed, one
row per message sent or held out, replaced when the same plan is committed again), so every host, and a
fresh output folder, counts what any host sent. Also read from the run folders' plans (the daily runs',
the ad-hoc campaigns' and the order-updates runs'): the plans made before the backend kept history, and
an ad-hoc plan still waiting for approval. A row both hold counts once. A backfill run in date order sees
the budget each day saw.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from tasks.kernel.enums import Decision, MessageKind
from tasks.kernel.paths import ADHOC_FOLDER, UPDATES_FOLDER, UPDATES_MARKETING_FILE, RunPaths
from tasks.kernel.runstore import durable_name
from tasks.state.protocol import HistoryRow, HistoryStore

HISTORY_COLUMNS = ("customer_id", "campaign", "step", "occurrence", "kind", "decision")
# a backfill's plan (a day before the run) sends on the day it runs: look that far back for its plans
BACKFILL_REACH_DAYS = 30


def marketing_history(
    output_dir: Path, as_of: date, days: int = 30, exclude: Path | None = None, store: HistoryStore | None = None
) -> pd.DataFrame:
    """Return (customer_id, campaign, step, occurrence, kind, decision, day) of what plans sent or held out.

    ``day`` is the day a message goes out (the plan's ``send_day``; a plan written before that column
    existed counts on its own day): the history covers the ``days`` before ``as_of``, ``as_of`` itself (the
    ad-hoc campaigns and order updates already planned today) and the days after it (a backfill of
    ``as_of`` runs after later days went out), so the budget counts every real day a message touches.
    Read from the daily plans, the one-off campaigns' and the marketing the order-updates runs planned
    (back in stock, ``tasks/jobs/order_updates.py``), and from ``store`` (the state backend's history,
    every host's). ``exclude``: the plan being made again (a re-run).
    """
    frames = [no_history()]
    first = as_of - timedelta(days=days)
    for back in range(-BACKFILL_REACH_DAYS, days + 1):
        day = as_of - timedelta(days=back)
        daily = RunPaths.for_day(output_dir, day).plan
        # the day's plan, and the plans of one-off campaigns sent that day (a withdrawn one is renamed)
        for path in [daily, *sorted((output_dir / ADHOC_FOLDER).glob(f"*/{day.isoformat()}/plan/plan.parquet"))]:
            if path.exists() and path != exclude:
                frames.append(sent_history(_read_plan(path), day))
        for update in sorted((output_dir / UPDATES_FOLDER / day.isoformat()).glob(f"*/plan/{UPDATES_MARKETING_FILE}")):
            planned = pd.read_parquet(update, columns=["customer_id", "campaign", "occurrence"])
            frames.append(
                planned.astype(object).assign(
                    step=1, kind=MessageKind.MARKETING.value, decision=Decision.SEND.value, day=pd.Timestamp(day)
                )
            )
    if store is not None:
        last = as_of + timedelta(days=BACKFILL_REACH_DAYS)
        kept = store.read(first, last, exclude=None if exclude is None else plan_id(exclude))
        frames.append(_from_rows(kept))
    out = _typed(pd.concat(frames, ignore_index=True))
    out = out.loc[(out["day"] >= pd.Timestamp(first)).to_numpy()].drop_duplicates()
    return _typed(out.reset_index(drop=True))


def plan_id(path: Path) -> str:
    """The name a plan's history is kept under: its file, so a plan written again replaces its rows.

    In an S3 run folder's mirror, the file's ``s3://`` name: the same on every worker.
    """
    return durable_name(path)


def record_history(store: HistoryStore, plan: pd.DataFrame, path: Path, day: date) -> None:
    """Keep what a committed plan (written at ``path``) sends or holds out, replacing what it held before."""
    rows = sent_history(plan, day)
    days = rows["day"].dt.date.to_numpy()  # dates in one pass: a Timestamp per row was most of this step's time
    store.record_plan(
        plan_id(path),
        [
            HistoryRow(c, p, int(s), o, k, d, t)
            for (c, p, s, o, k, d), t in zip(
                rows[list(HISTORY_COLUMNS)].itertuples(index=False, name=None), days, strict=True
            )
        ],
    )


def _from_rows(rows: list[HistoryRow]) -> pd.DataFrame:
    if not rows:
        return no_history()
    frame = pd.DataFrame(
        [(r.customer_id, r.campaign, r.step, r.occurrence, r.kind, r.decision, r.day) for r in rows],
        columns=[*HISTORY_COLUMNS, "day"],
    )
    return _typed(frame.assign(day=pd.to_datetime(frame["day"])))


def _read_plan(path: Path) -> pd.DataFrame:
    plan = pd.read_parquet(path)
    return plan[[c for c in (*HISTORY_COLUMNS, "send_day") if c in plan.columns]]


def no_history() -> pd.DataFrame:
    return _typed(
        pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY_COLUMNS}).assign(
            day=pd.Series(dtype="datetime64[ns]")
        )
    )


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(
        {
            "customer_id": str,
            "campaign": str,
            "step": "int64",
            "occurrence": str,
            "kind": str,
            "decision": str,
            "day": "datetime64[ns]",
        }
    )


def sent_history(plan: pd.DataFrame, day: date) -> pd.DataFrame:
    """Return one row per message a plan sends or holds out (channels once), on the day it goes out.

    The day is the plan's ``send_day`` where it has one, else ``day`` (the plan's own day).
    """
    kept = plan.loc[plan["decision"].isin([Decision.SEND.value, Decision.HOLDOUT.value])]
    kept = kept.drop_duplicates(["customer_id", "campaign", "step", "occurrence", "decision"])
    days = (
        pd.to_datetime(kept["send_day"]).fillna(pd.Timestamp(day))
        if "send_day" in kept.columns
        else pd.Series(pd.Timestamp(day), index=kept.index)
    )
    return _typed(
        pd.DataFrame(
            {
                "customer_id": kept["customer_id"].astype(str).to_numpy(dtype=object),
                "campaign": kept["campaign"].astype(str).to_numpy(dtype=object),
                "step": kept["step"].astype("int64").to_numpy(),
                "occurrence": kept["occurrence"].astype(str).to_numpy(dtype=object),
                "kind": kept["kind"].astype(str).to_numpy(dtype=object),
                "decision": kept["decision"].astype(str).to_numpy(dtype=object),
                "day": days.to_numpy(dtype="datetime64[ns]"),
            }
        )
    )
