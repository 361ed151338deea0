"""The business clock: the only place that asks what day it is, and only for a flow's default."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from prefect.runtime import flow_run


def business_date(shop_timezone: str) -> date:
    """Return the scheduled (or current) day in the shop's time zone."""
    scheduled = flow_run.scheduled_start_time
    moment = scheduled if isinstance(scheduled, datetime) else datetime.now(ZoneInfo("UTC"))
    return moment.astimezone(ZoneInfo(shop_timezone)).date()


def flow_run_id() -> str:
    """Return the current flow run's id, or a fresh one outside Prefect."""
    return str(flow_run.id or uuid.uuid4())


def sending_moment() -> datetime:
    """Return when this run sends: now. A backfill of an old day sends late, and lateness is judged on it."""
    return datetime.now(ZoneInfo("UTC"))


def _utc_now() -> datetime:
    return datetime.now(ZoneInfo("UTC"))


class SendClock:
    """When each wave of a run goes out.

    Real (no ``simulated`` time): a wave waits for its time, then goes at the real now, which is
    later than planned if the run started late. Simulated (the demo, tests, a ``--now``): time
    jumps to each wave's time, never backwards, and nothing waits.
    """

    def __init__(
        self,
        simulated: datetime | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._simulated = simulated
        self._sleep = sleep
        self._now = now

    def wait_for(self, at: datetime, on_wait: Callable[[float], None] = lambda seconds: None) -> datetime:
        """Return the moment a wave planned for ``at`` goes out, after waiting for it if the clock is real."""
        if self._simulated is not None:
            self._simulated = max(self._simulated, at)
            return self._simulated
        seconds = (at - self._now()).total_seconds()
        if seconds > 0:
            on_wait(seconds)
            self._sleep(seconds)
        return self._now()
