"""Send history: what went out, on the day it really went out, as the budget counts it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from tasks.kernel.paths import RunPaths
from tasks.plan.history import marketing_history, sent_history

TODAY = date(2027, 3, 9)
YESTERDAY = date(2027, 3, 8)


def _plan(customer: str, campaign: str, decision: str, send_day: date | None) -> pd.DataFrame:
    row = {
        "customer_id": customer,
        "campaign": campaign,
        "step": 1,
        "occurrence": "2027-03-08",
        "kind": "marketing",
        "decision": decision,
        "channel": "email",
    }
    frame = pd.DataFrame([row, row | {"channel": "sms"}])  # two channels: one message
    return frame if send_day is None else frame.assign(send_day=pd.Timestamp(send_day))


def test_a_message_counts_once_on_the_day_it_goes_out_and_holdouts_are_kept_apart() -> None:
    plan = pd.concat([_plan("C1", "win_back", "send", TODAY), _plan("C2", "win_back", "holdout", TODAY)])

    history = sent_history(plan, YESTERDAY)  # a backfill of the 8th, sending on the 9th

    assert list(zip(history["customer_id"], history["decision"], history["day"].dt.date, strict=True)) == [
        ("C1", "send", TODAY),
        ("C2", "holdout", TODAY),
    ]


def test_a_plan_written_before_send_days_were_recorded_counts_on_its_own_day() -> None:
    history = sent_history(_plan("C1", "win_back", "send", None), YESTERDAY)

    assert list(history["day"].dt.date) == [YESTERDAY]


def test_a_backfill_of_yesterday_sees_what_todays_run_already_sent_but_not_its_own_old_plan(tmp_path: Path) -> None:
    def write(day: date, frame: pd.DataFrame) -> Path:
        path = RunPaths.for_day(tmp_path, day).plan
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path)
        return path

    write(TODAY, _plan("C1", "weekly_sale", "send", TODAY))
    own = write(YESTERDAY, _plan("C1", "win_back", "send", YESTERDAY))

    history = marketing_history(tmp_path, YESTERDAY, exclude=own)

    assert list(zip(history["campaign"], history["day"].dt.date, strict=True)) == [("weekly_sale", TODAY)]
