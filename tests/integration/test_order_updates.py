"""The order-updates flow under a real Prefect server, sending through a local SES and SNS."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from typer.testing import CliRunner

from flows.order_updates import order_updates
from tasks.jobs.order_updates import WATERMARK_FILE
from tasks.kernel.enums import Table
from tasks.kernel.settings import PROJECT_ROOT
from tests.conftest import REGION, sms_in_moto
from tests.shops import add_rows, tiny_shop, write_shop

pytestmark = pytest.mark.usefixtures("prefect_harness")

NOON = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)  # Warsaw 12:00, London 11:00: nobody's quiet hours

# Minimal order-status templates, so the test does not depend on the shop's copy.
TEMPLATES = {
    "subject.txt.j2": "{{ shop_name }}: order {{ order_id }} is {{ variant }}",
    "body.html.j2": "<p>Hello{% if first_name %} {{ first_name }}{% endif %},</p>"
    '<p>Your order {{ order_id }} is {{ variant }}. <a href="{{ order_url }}">Track it</a></p>',
    "body.txt.j2": "Hello{% if first_name %} {{ first_name }}{% endif %},\n"
    "your order {{ order_id }} is {{ variant }}: {{ order_url }}",
    "sms.txt.j2": "{{ shop_name }}: order {{ order_id }} is {{ variant }}. {{ order_url }}",
}


@pytest.fixture(autouse=True)
def order_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two order-update campaigns alone, and templates for the order-status messages."""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    for name in ("order_status.yaml", "back_in_stock.yaml"):
        shutil.copy(PROJECT_ROOT / "campaigns" / name, campaigns / name)
    templates = tmp_path / "templates"
    (templates / "order_status" / "en").mkdir(parents=True)
    for part, text in TEMPLATES.items():
        (templates / "order_status" / "en" / part).write_text(text, encoding="utf-8")
    monkeypatch.setenv("LOYALTY_CAMPAIGNS_DIR", str(campaigns))
    monkeypatch.setenv("LOYALTY_TEMPLATES_DIR", str(templates))
    monkeypatch.setenv("LOYALTY_SMS_RATE", "100")


def _shop(folder: Path, events: list[tuple[str, str, datetime]]) -> Path:
    """The tiny shop with O10 (Ola: email and SMS) and O11 (Bob: email only), and their order events."""
    frames = add_rows(
        tiny_shop(),
        Table.ORDERS,
        [
            {"order_id": o, "customer_id": c, "created_at": "2024-06-01T08:00:00Z", "total": "9", "currency": "EUR"}
            | {"status": "processing"}
            for o, c in (("O10", "C2"), ("O11", "C3"))
        ],
    )
    rows = [{"order_id": o, "status": s, "at": at.isoformat()} for o, s, at in events]
    return write_shop(add_rows(frames, Table.ORDER_EVENTS, rows), folder)


def _emails() -> list[EmailMessage]:
    from moto.ses.models import ses_backends

    raw = [m.raw_data for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages]
    return [message_from_string(r, policy=policy.default) for r in raw]  # type: ignore[misc]


def _to(message: EmailMessage) -> str:
    return str(message["To"].addresses[0].addr_spec)


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def test_each_order_update_reaches_its_customer_once_and_a_new_status_once_more(aws: str, tmp_path: Path) -> None:
    paid = NOON - timedelta(minutes=2)
    shop = _shop(tmp_path / "shop", [("O10", "paid", paid), ("O11", "paid", paid)])

    first = order_updates(data=str(shop), now=NOON)
    again = order_updates(data=str(shop), now=NOON + timedelta(minutes=5))  # its overlap sees the same events
    _shop(
        tmp_path / "shop",
        [("O10", "paid", paid), ("O11", "paid", paid), ("O11", "delivered", NOON + timedelta(minutes=7))],
    )
    later = order_updates(data=str(shop), now=NOON + timedelta(minutes=10))

    emails = _emails()
    assert first.sent_by_channel == {"email": 2, "sms": 1}
    assert first.skipped_by_reason == {"invalid_phone": 1}  # Bob has no phone for the SMS copy
    assert {_to(m): _text(m) for m in emails[:2]} == {
        "ola@example.com": "Hello Ola,\r\nyour order O10 is paid: https://shop.example.com/orders/O10\r\n",
        "bob@example.com": "Hello Bob,\r\nyour order O11 is paid: https://shop.example.com/orders/O11\r\n",
    }
    sms = sms_in_moto(aws)
    assert [(m["phone_number"], "order O10 is paid" in m["message"]) for m in sms] == [("+48512345678", True)]

    assert again.sent == 0 and again.skipped_by_reason == {"duplicate": 3, "invalid_phone": 1}

    assert later.sent == 1 and later.sent_by_channel == {"email": 1}
    assert _to(emails[2]) == "bob@example.com" and "order O11 is delivered" in _text(emails[2])
    assert len(emails) == 3 and len(sms_in_moto(aws)) == 1
    assert (first.watermark_before, first.watermark_after) == (None, NOON)
    assert later.watermark_after == NOON + timedelta(minutes=10) and later.pending_from is None
    saved = json.loads((tmp_path / "state" / WATERMARK_FILE).read_text())
    assert pd.Timestamp(saved["processed_until"]) == pd.Timestamp(NOON + timedelta(minutes=10))
    run_dir = Path(str(later.run_dir))
    assert (run_dir / "summary.json").exists() and not (run_dir / "snapshot").exists()
    assert "@example.com" not in (run_dir / "summary.json").read_text()
    assert "order/O11/delivered/email" in (run_dir / "outbox" / "index.html").read_text()


def test_at_night_the_order_email_goes_at_once_and_the_sms_copy_in_the_morning(aws: str, tmp_path: Path) -> None:
    paid = datetime(2024, 6, 1, 22, 30, tzinfo=UTC)  # Warsaw 00:30
    shop = _shop(tmp_path / "shop", [("O10", "paid", paid)])

    night = order_updates(data=str(shop), now=paid + timedelta(minutes=5))
    morning = order_updates(data=str(shop), now=datetime(2024, 6, 2, 7, 5, tzinfo=UTC))  # Warsaw 09:05

    assert night.sent_by_channel == {"email": 1}
    assert night.deferred_by_reason == {"quiet_hours": 1}
    assert night.pending_from == paid  # the SMS is owed: the next run looks at its event again
    assert morning.sent_by_channel == {"sms": 1}
    assert morning.skipped_by_reason == {"duplicate": 1}
    assert morning.pending_from is None
    assert len(_emails()) == 1 and len(sms_in_moto(aws)) == 1


def test_the_command_dry_run_sends_nothing_and_keeps_the_watermark(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cli import app

    monkeypatch.setattr("flows.cli.ops._prefect_env", lambda verbose: None)  # keep this process's Prefect settings
    shop = _shop(tmp_path / "shop", [("O10", "paid", NOON - timedelta(minutes=2))])

    result = CliRunner().invoke(
        app, ["order-updates", "--data", str(shop), "--now", NOON.isoformat(), "--dry-run", "--json"]
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["dry_run"] is True and summary["to_send"] == 2 and summary["sent"] == 0
    assert summary["watermark_after"] is None
    assert not (tmp_path / "state" / WATERMARK_FILE).exists()
    assert _emails() == [] and sms_in_moto(aws) == []


def test_a_replayed_window_after_a_normal_run_sends_nothing_twice_and_leaves_the_watermark(
    aws: str, tmp_path: Path
) -> None:
    paid = NOON - timedelta(minutes=2)
    shop = _shop(tmp_path / "shop", [("O10", "paid", paid), ("O11", "paid", paid)])
    first = order_updates(data=str(shop), now=NOON)

    replay = order_updates(from_=NOON - timedelta(hours=1), to=NOON, data=str(shop), now=NOON + timedelta(hours=1))
    following = order_updates(data=str(shop), now=NOON + timedelta(hours=2))

    assert first.sent == 3
    assert replay.replay and replay.sent == 0
    assert replay.skipped_by_reason == {"duplicate": 3, "invalid_phone": 1}
    assert replay.watermark_after is None
    # the scheduled runs go on from where the last of them stopped, not from the replay
    assert following.watermark_before == NOON
    assert len(_emails()) == 2 and len(sms_in_moto(aws)) == 1


def test_a_replayed_window_sends_the_messages_that_were_parked(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cli import app

    monkeypatch.setattr("flows.cli.ops._prefect_env", lambda verbose: None)  # keep this process's Prefect settings
    paid = NOON - timedelta(minutes=2)
    shop = _shop(tmp_path / "shop", [("O10", "paid", paid)])
    monkeypatch.setenv("LOYALTY_PAUSED_CHANNELS", '["sms"]')  # the SMS kill switch is on during the run
    outage = order_updates(data=str(shop), now=NOON)
    monkeypatch.delenv("LOYALTY_PAUSED_CHANNELS")

    later = (NOON + timedelta(minutes=30)).isoformat()
    window = ["--from", (NOON - timedelta(hours=1)).isoformat(), "--to", NOON.isoformat()]
    result = CliRunner().invoke(app, ["order-updates", *window, "--now", later, "--data", str(shop), "--json"])

    assert result.exit_code == 0, result.output
    replay = json.loads(result.stdout)
    assert outage.sent_by_channel == {"email": 1} and outage.delivery.get("parked") == 1
    assert replay["replay"] is True and replay["sent_by_channel"] == {"sms": 1}
    assert replay["skipped_by_reason"] == {"duplicate": 1}
    assert len(_emails()) == 1 and len(sms_in_moto(aws)) == 1
