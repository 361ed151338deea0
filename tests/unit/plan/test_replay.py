"""Filtered replays: the day planned whole, only the chosen campaigns and channels sent, the rest held back."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.plan.campaigns import Campaign
from tasks.plan.replay import ReplayFilter, hold_back, replay_filter

CATALOG: dict[str, Campaign] = {"birthday": None, "win_back": None}  # type: ignore[dict-item]  # names are what count


def _plan() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "idempotency_key": ["b/sms", "b/email", "w/sms", "w/email-capped"],
            "campaign": ["birthday", "birthday", "win_back", "win_back"],
            "channel": ["sms", "email", "sms", "email"],
            "decision": ["send", "send", "send", "skipped"],
            "reason": ["", "", "", "frequency_cap"],
        }
    )


def test_only_the_chosen_campaign_and_channel_go_and_the_rest_is_held_back_with_every_other_decision_kept() -> None:
    only = replay_filter(["birthday"], ["sms"], CATALOG)

    plan = hold_back(_plan(), only)

    assert plan[["idempotency_key", "decision", "reason"]].values.tolist() == [
        ["b/sms", "send", ""],
        ["b/email", "deferred", "held_back"],
        ["w/sms", "deferred", "held_back"],
        ["w/email-capped", "skipped", "frequency_cap"],
    ]


def test_repeated_and_comma_separated_names_make_one_filter_and_no_names_no_filter() -> None:
    assert replay_filter(["birthday, win_back", "birthday"], None, CATALOG) == ReplayFilter(
        campaigns=("birthday", "win_back")
    )
    assert replay_filter(None, ["sms,email"], CATALOG) == ReplayFilter(channels=("sms", "email"))
    assert replay_filter(None, [], CATALOG) is None
    assert hold_back(_plan(), None).equals(_plan())


def test_unknown_campaigns_and_channels_are_one_error_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError) as caught:
        replay_filter(["brithday"], ["push"], CATALOG)

    assert str(caught.value) == (
        "unknown campaign 'brithday': the daily campaigns are birthday, win_back; "
        "unknown channel 'push': the channels are email, sms"
    )
