"""Consent across runs: an unsubscribed customer hears nothing more, however they are re-imported, and an
unsubscribe from offers stops offers only: order emails go on; a complaint or a whole-channel link stops them too."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pandas as pd
import pytest
import yaml
from moto.core import DEFAULT_ACCOUNT_ID

from flows.daily_run import daily_run
from flows.order_updates import order_updates
from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.consent.tokens import Purpose, purpose_key, sign
from tasks.consent.unsubscribe import make_app
from tasks.kernel.enums import Channel, Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tests.conftest import REGION
from tests.shops import add_rows, tiny_shop, write_shop

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _ses_sent() -> int:
    return int(boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"])


async def _one_click(url: str) -> int:
    parts = urlsplit(url)
    transport = httpx.ASGITransport(app=make_app(Settings()))
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example.com") as client:
        response = await client.post(
            f"{parts.path}?{parts.query}",
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    return response.status_code


def _reimported_shop() -> dict[Table, pd.DataFrame]:
    """C1 comes back under a new id with the same address, buys again in June, and lapses again."""
    frames = tiny_shop()
    frames[Table.CUSTOMERS].loc[0, "customer_id"] = "C1-NEW"
    frames[Table.EVENTS]["customer_id"] = "C1-NEW"
    orders = frames[Table.ORDERS]
    orders.loc[orders["customer_id"] == "C1", "customer_id"] = "C1-NEW"
    extra = pd.DataFrame(
        [["O9", "C1-NEW", "2024-06-10T12:00:00Z", "delivered", "12.50", "EUR"]], columns=orders.columns
    )
    frames[Table.ORDERS] = pd.concat([orders, extra], ignore_index=True)
    items = frames[Table.ORDER_ITEMS]
    frames[Table.ORDER_ITEMS] = pd.concat(
        [items, pd.DataFrame([["O9", "P1", "1", "12.50"]], columns=items.columns)], ignore_index=True
    )
    return frames


@pytest.mark.usefixtures("win_back_only")
def test_an_unsubscribed_customer_gets_nothing_even_under_a_new_id(aws: str, tmp_path: Path) -> None:
    first = daily_run(
        as_of=date(2024, 6, 1),
        data=str(write_shop(tiny_shop(), tmp_path / "a")),
        now=datetime(2024, 6, 1, 3, tzinfo=UTC),
    )
    assert first.sent == 1  # C1, lapsed since February
    rendered = pd.read_parquet(RunPaths(Path(first.run_dir)).rendered_shard(1))

    assert asyncio.run(_one_click(str(rendered.loc[0, "unsubscribe_url"]))) == 200

    later = daily_run(
        as_of=date(2024, 9, 15),
        data=str(write_shop(_reimported_shop(), tmp_path / "b")),
        now=datetime(2024, 9, 15, 3, tzinfo=UTC),
    )
    plan = pd.read_parquet(RunPaths(Path(later.run_dir)).plan).set_index("customer_id")
    assert (plan.loc["C1-NEW", "decision"], plan.loc["C1-NEW", "reason"]) == ("skipped", "suppressed")
    assert later.sent == 1  # C2, who lapsed meanwhile, still hears from us
    assert _ses_sent() == 2


# --- topics: an unsubscribe from offers keeps order emails; a complaint or a whole-channel link stops them ------

THURSDAY_NOON = datetime(2024, 6, 6, 10, 0, tzinfo=UTC)  # Warsaw 12:00
FRIDAY = date(2024, 6, 7)  # the weekly sale's day


@pytest.fixture
def orders_and_sale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The order-status updates and the Friday sale (no holdout, so counts are exact), with the shop's templates."""
    folder = tmp_path / "campaigns-orders-and-sale"
    folder.mkdir()
    for name in ("order_status.yaml", "segments.yaml"):
        shutil.copy(PROJECT_ROOT / "campaigns" / name, folder / name)
    sale = yaml.safe_load((PROJECT_ROOT / "campaigns" / "weekly_sale.yaml").read_text(encoding="utf-8"))
    (folder / "weekly_sale.yaml").write_text(yaml.safe_dump({**sale, "holdout_share": 0.0}), encoding="utf-8")
    monkeypatch.setenv("LOYALTY_CAMPAIGNS_DIR", str(folder))
    monkeypatch.setenv("LOYALTY_SMS_RATE", "100")


def _orders_shop(folder: Path, events: list[tuple[str, str, datetime]]) -> str:
    """The tiny shop with O10 (Ola, pl: email and SMS) and O11 (Bob, en: email), and their order events."""
    frames = add_rows(
        tiny_shop(),
        Table.ORDERS,
        [
            {"order_id": o, "customer_id": c, "created_at": "2024-06-06T08:00:00Z", "status": "processing"}
            | {"total": "9", "currency": "EUR"}
            for o, c in (("O10", "C2"), ("O11", "C3"))
        ],
    )
    rows = [{"order_id": o, "status": s, "at": at.isoformat()} for o, s, at in events]
    return str(write_shop(add_rows(frames, Table.ORDER_EVENTS, rows), folder))


def _emails_sent() -> list[EmailMessage]:
    from moto.ses.models import ses_backends

    raw = [m.raw_data for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages]
    return [message_from_string(r, policy=policy.default) for r in raw]  # type: ignore[misc]


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def _decisions(run_dir: str) -> dict[str, str]:
    plan = pd.read_parquet(RunPaths(Path(run_dir)).plan)
    return {f"{r.campaign}/{r.customer_id}": f"{r.decision}:{r.reason}".rstrip(":") for r in plan.itertuples()}


@pytest.mark.usefixtures("orders_and_sale")
def test_the_order_email_s_link_posted_one_click_stops_offers_and_the_next_order_email_still_goes(
    aws: str, tmp_path: Path
) -> None:
    # Thursday: Ola's order is paid; the order email's footer links to her email preferences
    paid = THURSDAY_NOON - timedelta(minutes=2)
    shop = _orders_shop(tmp_path / "shop", [("O10", "paid", paid)])
    thursday = order_updates(data=shop, now=THURSDAY_NOON)
    (order_email,) = _emails_sent()
    footer = re.search(r"Wypisz się: (\S+)", _text(order_email))
    assert thursday.sent_by_channel == {"email": 1, "sms": 1} and footer is not None
    assert order_email["List-Unsubscribe"] is None  # an order email is no list to unsubscribe from

    # she (or her mail client) POSTs that link one-click
    assert asyncio.run(_one_click(footer.group(1))) == 200

    # Friday: her order ships (the email goes) and the weekly sale goes to everyone but her
    shipped = datetime(2024, 6, 7, 9, 58, tzinfo=UTC)
    _orders_shop(tmp_path / "shop", [("O10", "paid", paid), ("O10", "shipped", shipped)])
    friday_orders = order_updates(data=shop, now=shipped + timedelta(minutes=2))
    sale = daily_run(as_of=FRIDAY, data=shop, now=datetime(2024, 6, 7, 3, tzinfo=UTC))

    assert friday_orders.sent_by_channel == {"email": 1, "sms": 1}
    assert _decisions(str(sale.run_dir)) == {
        "weekly_sale/C1": "send",
        "weekly_sale/C2": "skipped:suppressed",
        "weekly_sale/C3": "send",
    }
    emails = _emails_sent()
    order_emails, sale_emails = emails[:2], emails[2:]
    assert [_to(m) for m in order_emails] == ["ola@example.com", "ola@example.com"]
    assert "O10" in str(order_emails[1]["Subject"]) and "Wypisz się:" in _text(order_emails[1])
    assert sorted(_to(m) for m in sale_emails) == ["anna@example.com", "bob@example.com"]
    # the sale's List-Unsubscribe (RFC 8058 one-click) stops offers: the same topic as every footer link
    assert all("tp=marketing" in str(m["List-Unsubscribe"]) for m in sale_emails)


@pytest.mark.usefixtures("orders_and_sale")
def test_a_complaint_or_an_old_link_without_a_topic_stops_order_emails_too(aws: str, tmp_path: Path) -> None:
    # Ola's address complained; Bob POSTs a link sent before links carried a topic (whole channel, as it was)
    SuppressionList.for_settings(Settings()).add(Channel.EMAIL, "ola@example.com", SuppressionReason.COMPLAINT)
    token = sign(purpose_key(Settings(), Purpose.UNSUBSCRIBE), "unsubscribe", "C3", "email")
    assert asyncio.run(_one_click(f"https://shop.example.com/unsubscribe?c=C3&ch=email&t={token}")) == 200
    paid = datetime(2024, 6, 7, 9, 58, tzinfo=UTC)
    shop = _orders_shop(tmp_path / "shop", [("O10", "paid", paid), ("O11", "paid", paid)])

    orders = order_updates(data=shop, now=paid + timedelta(minutes=2))
    sale = daily_run(as_of=FRIDAY, data=shop, now=datetime(2024, 6, 7, 3, tzinfo=UTC))

    assert orders.sent_by_channel == {"sms": 1}  # Ola's SMS copy: her complaint was about email
    assert orders.skipped_by_reason == {"suppressed": 2, "invalid_phone": 1}
    assert _decisions(str(sale.run_dir)) == {
        "weekly_sale/C1": "send",
        "weekly_sale/C2": "skipped:suppressed",
        "weekly_sale/C3": "skipped:suppressed",
    }
    assert [_to(m) for m in _emails_sent()] == ["anna@example.com"]


def _to(message: EmailMessage) -> str:
    return str(message["To"].addresses[0].addr_spec)
