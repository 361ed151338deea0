"""The business clock: the only place that asks what day it is, and only for a flow's default."""

from __future__ import annotations

import uuid
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
