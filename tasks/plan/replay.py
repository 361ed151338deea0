"""Filtered replays: send only some campaigns or channels of a day, and hold the rest back for their own replay.

A filtered backfill (``loyalty backfill --campaign birthday --channel sms``) plans the day whole, exactly as
an unfiltered run would: the filter never reaches the gates, so the frequency budget, the priorities and
every other row's decision stay what the day decides. Only then are the rows the filter leaves out and the
plan meant to send marked ``deferred`` with reason ``held_back``: they are not sent, not registered as
coupons, and not counted as sent by later days' budgets. A later replay of the day (filtered or not) plans
them again and sends them; the ledger keeps every message at most once whichever replay comes first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tasks.kernel.enums import Channel, Decision, SkipReason
from tasks.plan.campaigns import Campaign


class ReplayFilter(BaseModel):
    """The campaigns and channels a replay sends (None: all of them)."""

    model_config = ConfigDict(frozen=True)

    campaigns: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None

    def describe(self) -> dict[str, list[str]]:
        """The filter as a person reads it: only what it narrows."""
        out: dict[str, list[str]] = {}
        if self.campaigns is not None:
            out["campaigns"] = list(self.campaigns)
        if self.channels is not None:
            out["channels"] = list(self.channels)
        return out

    def matches(self, plan: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """Rows of a plan the filter lets through."""
        keep = np.ones(len(plan), dtype=bool)
        if self.campaigns is not None:
            keep &= plan["campaign"].astype(str).isin(self.campaigns).to_numpy(dtype=bool)
        if self.channels is not None:
            keep &= plan["channel"].astype(str).isin(self.channels).to_numpy(dtype=bool)
        return keep


def _names(values: Iterable[str] | None) -> tuple[str, ...] | None:
    """Repeated or comma-separated names, trimmed, in order, once each; None or empty: no filter."""
    if values is None:
        return None
    names = [n.strip() for v in values for n in str(v).split(",") if n.strip()]
    return tuple(dict.fromkeys(names)) or None


def replay_filter(
    campaigns: Iterable[str] | None, channels: Iterable[str] | None, catalog: Mapping[str, Campaign]
) -> ReplayFilter | None:
    """Check a replay's campaigns (against the daily catalog) and channels; None when it filters nothing.

    Raises ValueError naming every unknown name and listing the valid ones.
    """
    wanted = ReplayFilter(campaigns=_names(campaigns), channels=_names(channels))
    problems = []
    unknown = [c for c in wanted.campaigns or () if c not in catalog]
    if unknown:
        problems.append(
            f"unknown campaign {', '.join(map(repr, unknown))}: the daily campaigns are {', '.join(sorted(catalog))}"
        )
    valid_channels = [c.value for c in Channel]
    unknown = [c for c in wanted.channels or () if c not in valid_channels]
    if unknown:
        problems.append(
            f"unknown channel {', '.join(map(repr, unknown))}: the channels are {', '.join(valid_channels)}"
        )
    if problems:
        raise ValueError("; ".join(problems))
    return None if wanted.campaigns is None and wanted.channels is None else wanted


def hold_back(plan: pd.DataFrame, only: ReplayFilter | None) -> pd.DataFrame:
    """Mark the rows to send that the filter leaves out ``deferred`` / ``held_back``; every other row as it was."""
    if only is None:
        return plan
    held = (plan["decision"] == Decision.SEND.value).to_numpy(dtype=bool) & ~only.matches(plan)
    out = plan.copy()
    out.loc[held, "decision"] = Decision.DEFERRED.value
    out.loc[held, "reason"] = SkipReason.HELD_BACK.value
    return out
