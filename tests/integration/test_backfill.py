"""Backfill: each day decides what it decided then; sent messages are never sent again; late ones are dropped."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from flows.backfill import backfill, days_between
from tests.conftest import REGION, sms_in_moto
from tests.shops import tiny_shop, write_shop

pytestmark = pytest.mark.usefixtures("prefect_harness", "win_back_only")


def _ses_sent() -> int:
    return int(boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"])


def test_a_backfilled_week_sends_each_message_once(aws: str, tmp_path: Path) -> None:
    shop = write_shop(tiny_shop(), tmp_path / "shop")
    # C1 lapses (90 days) on 2024-05-01; the week is backfilled a day later
    soon_after = datetime(2024, 5, 8, 9, tzinfo=UTC)

    week = backfill(start=date(2024, 4, 29), end=date(2024, 5, 5), data=str(shop), now=soon_after)
    again = backfill(start=date(2024, 4, 29), end=date(2024, 5, 5), data=str(shop), now=soon_after)

    assert [s.as_of for s in week] == days_between(date(2024, 4, 29), date(2024, 5, 5))
    assert [s.sent for s in week] == [0, 0, 1, 0, 0, 0, 0]
    assert [s.skipped_by_reason.get("duplicate", 0) for s in week] == [0, 0, 0, 1, 1, 1, 1]
    assert sum(s.sent for s in again) == 0
    assert _ses_sent() == 1


def test_messages_older_than_their_campaign_allows_are_skipped_too_late(aws: str, tmp_path: Path) -> None:
    shop = write_shop(tiny_shop(), tmp_path / "shop")
    months_later = datetime(2024, 9, 1, 9, tzinfo=UTC)  # win-back allows 30 days

    (day,) = backfill(start=date(2024, 5, 1), end=date(2024, 5, 1), data=str(shop), now=months_later)

    assert day.sent == 0
    assert day.skipped_by_reason == {"too_late": 1}
    assert _ses_sent() == 0


# --- filtered replays and `loyalty missed` -------------------------------------------------------------------

LAPSE_DAY = date(2024, 8, 18)  # Ola (C2, SMS opt-in, Warsaw) lapses: her last order was on 20 May
LATER_THAT_MORNING = datetime(2024, 8, 18, 9, tzinfo=UTC)  # 11:00 in Warsaw: past the 10:00 wave, no quiet hours


@pytest.fixture
def win_back_by_email_and_sms(win_back_only: Path) -> Path:
    """The win-back on both channels, nobody held out: each lapse is one email and, with SMS consent, one SMS."""
    campaign = win_back_only / "win_back.yaml"
    text = campaign.read_text(encoding="utf-8")
    campaign.write_text(
        text.replace("channels: [email]", "channels: [email, sms]").replace("holdout_share: 0.1", "holdout_share: 0"),
        encoding="utf-8",
    )
    return win_back_only


def _missed(day: date) -> list[dict[str, object]]:
    from flows.cli import app

    result = CliRunner().invoke(app, ["missed", "--from", str(day), "--to", str(day), "--json"])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def _sms_sent(endpoint: str) -> int:
    return len(sms_in_moto(endpoint))


@pytest.mark.usefixtures("win_back_by_email_and_sms")
def test_parked_sms_are_listed_as_missed_and_a_replay_of_that_days_sms_sends_exactly_those(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = write_shop(tiny_shop(), tmp_path / "shop")
    # given: the day ran with the SMS kill switch on
    monkeypatch.setenv("LOYALTY_PAUSED_CHANNELS", '["sms"]')
    (outage,) = backfill(start=LAPSE_DAY, end=LAPSE_DAY, data=str(shop), now=LATER_THAT_MORNING)
    monkeypatch.delenv("LOYALTY_PAUSED_CHANNELS")

    # when: an engineer asks what the day missed
    missed = _missed(LAPSE_DAY)

    # then: the SMS, parked, with the command that replays it
    assert (outage.sent, outage.parked) == (1, 1)
    command = f"loyalty backfill --from {LAPSE_DAY} --to {LAPSE_DAY} --campaign win_back --channel sms"
    assert missed == [
        {"day": "2024-08-18", "campaign": "win_back", "channel": "sms", "reason": "parked", "messages": 1}
        | {"replay": command}
    ]
    assert "ola@example.com" not in json.dumps(missed) and "+48" not in json.dumps(missed)

    # when: the replay the report gives runs
    (replay,) = backfill(
        start=LAPSE_DAY, end=LAPSE_DAY, campaigns=["win_back"], channels=["sms"], data=str(shop), now=LATER_THAT_MORNING
    )

    # then: exactly the parked SMS goes; the email is not sent again; nothing is missed any more
    assert replay.sent_by_channel == {"sms": 1} and replay.sent == 1
    assert replay.skipped_by_reason == {"duplicate": 1}
    assert (_ses_sent(), _sms_sent(aws)) == (1, 1)
    assert _missed(LAPSE_DAY) == []


@pytest.mark.usefixtures("win_back_by_email_and_sms")
def test_a_filtered_replay_holds_the_rest_back_and_a_later_full_replay_sends_it_and_nothing_twice(
    aws: str, tmp_path: Path
) -> None:
    shop = write_shop(tiny_shop(), tmp_path / "shop")

    (sms_only,) = backfill(start=LAPSE_DAY, end=LAPSE_DAY, channels=["sms"], data=str(shop), now=LATER_THAT_MORNING)
    held = _missed(LAPSE_DAY)
    (full,) = backfill(start=LAPSE_DAY, end=LAPSE_DAY, data=str(shop), now=LATER_THAT_MORNING)

    # the filtered replay planned the whole day, sent the SMS and says what it held back
    assert sms_only.sent_by_channel == {"sms": 1}
    assert (sms_only.held_back, sms_only.replay_filter) == (1, {"channels": ["sms"]})
    assert sms_only.deferred_by_reason == {"held_back": 1}
    assert "1 held back by the replay filter" in sms_only.headline()
    assert [(g["channel"], g["reason"]) for g in held] == [("email", "held_back")]
    # the full replay sends the email alone; each message went once
    assert full.sent_by_channel == {"email": 1} and full.skipped_by_reason == {"duplicate": 1}
    assert (_ses_sent(), _sms_sent(aws)) == (1, 1)
    assert _missed(LAPSE_DAY) == []


def test_an_unknown_campaign_or_channel_is_refused_before_any_day_runs(tmp_path: Path) -> None:
    from flows.cli import app

    result = CliRunner().invoke(
        app, ["backfill", "--from", "2024-05-01", "--to", "2024-05-02", "--campaign", "winback", "--channel", "push"]
    )

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "unknown campaign 'winback': the daily campaigns are win_back" in message
    assert "unknown channel 'push': the channels are email, sms" in message
    assert not (tmp_path / "out").exists()
