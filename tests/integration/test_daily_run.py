"""The daily flow under a real Prefect server, sending through a local SES."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from flows.daily_run import daily_run
from tasks.consent.suppression import SuppressionList
from tasks.kernel.enums import Channel, Table
from tasks.plan.gates import in_holdout
from tests.conftest import REGION, sms_in_moto
from tests.shops import add_rows, tiny_shop, write_shop

AS_OF = date(2024, 6, 1)
MORNING = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)  # the runs below send on their own day

pytestmark = pytest.mark.usefixtures("prefect_harness", "win_back_only")


def _lapsed_shop(n: int) -> dict[Table, pd.DataFrame]:
    """The tiny shop plus n customers whose last order was 100 days before AS_OF, in three locales."""
    locales = [
        ("ru", "RU", "Europe/Moscow", "Мария"),
        ("pl", "PL", "Europe/Warsaw", "Zofia"),
        ("en", "GB", "Europe/London", ""),
    ]
    customers, orders = [], []
    for i in range(n):
        locale, country, zone, name = locales[i % 3]
        customers.append(
            {
                "customer_id": f"L{i:04d}",
                "email": f"l{i}@example.com",
                "first_name": name,
                "gender": "f",
                "locale": locale,
                "timezone": zone,
                "country": country,
                "created_at": "2023-01-01T00:00:00Z",
                "email_opt_in": "false" if i % 10 == 9 else "true",
                "sms_opt_in": "false",
            }
        )
        orders.append(
            {
                "order_id": f"OL{i:04d}",
                "customer_id": f"L{i:04d}",
                "created_at": "2024-02-22T10:00:00Z",
                "status": "delivered",
                "total": "10",
                "currency": "EUR",
            }
        )
    frames = add_rows(tiny_shop(), Table.CUSTOMERS, customers)
    return add_rows(frames, Table.ORDERS, orders)


def _held_out(customer_ids: list[str]) -> list[str]:
    """Customers the win-back's 10% holdout sets aside this quarter (the same stable hash the planner uses)."""
    ids = pd.Series(customer_ids)
    mask = in_holdout(ids, "win_back", pd.Series(["2024Q2"] * len(ids)), 0.1)  # the lapses began in Q2 2024
    return list(ids[mask])


def _ses_sent() -> int:
    return int(boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"])


def test_second_run_for_the_same_day_sends_nothing(aws: str, tmp_path: Path) -> None:
    shop = write_shop(_lapsed_shop(30), tmp_path / "shop")

    first = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)
    second = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    # C1 (lapsed 121 days) + 27 of the 30 new customers (every tenth has no consent); 10% held out
    held_out = _held_out(["C1", *[f"L{i:04d}" for i in range(30) if i % 10 != 9]])
    assert first.holdout == len(held_out) >= 1
    assert first.sent == 28 - len(held_out)
    assert first.skipped_by_reason == {"no_consent": 3}
    assert second.sent == 0
    assert second.skipped_by_reason == {"no_consent": 3, "duplicate": first.sent}
    assert _ses_sent() == first.sent
    assert "Nothing new to send" in second.headline()


def test_run_writes_outbox_summary_and_quarantine(aws: str, tmp_path: Path) -> None:
    frames = add_rows(
        _lapsed_shop(3),
        Table.CUSTOMERS,
        [
            {"customer_id": "BAD", "email": "bad@example.com", "created_at": "01.01.2023"},
            {"customer_id": "TYPO", "email": "x@@y", "created_at": "2023-01-01"},  # kept, the email emptied
        ],
    )
    shop = write_shop(frames, tmp_path / "shop")

    summary = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    run_dir = Path(summary.run_dir)
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["sent"] == summary.sent == 4  # C1 and the three lapsed customers
    assert saved["quarantined_by_reason"] == {"customers": {"unparseable_date": 1}}
    quarantine = pd.read_csv(run_dir / "quarantine.csv")
    assert quarantine.to_dict("records") == [
        {"table": "customers", "row": 7, "column": "created_at", "reason": "unparseable_date"}
    ]
    assert saved["nulled_by_column"] == {"customers": {"email": {"invalid_email": 1}}}
    assert pd.read_csv(run_dir / "nulled_cells.csv").to_dict("records") == [
        {"table": "customers", "row": 8, "column": "email", "reason": "invalid_email"}
    ]
    index = (run_dir / "outbox" / "index.html").read_text()
    assert index.count("<tr><td>win_back</td>") == 4
    ru = (run_dir / "outbox" / "win_back" / "L0000-email.html").read_text()
    assert "Здравствуйте, Мария!" in ru
    assert "@" not in json.dumps(saved) and "@example.com" not in index
    # the day's profile, segment snapshot and KPIs are written beside the messages
    profile = pd.read_parquet(run_dir / "profile" / "profile.parquet")
    assert len(profile) == saved["customers_loaded"] and "@example.com" not in profile.to_csv()
    membership = pd.read_parquet(run_dir / "segments" / "membership.parquet")
    assert sorted(membership["customer_id"]) == sorted(profile["customer_id"])
    assert saved["segments"]["lifecycle: lapsed"] >= 3  # the lapsed customers of the shop
    assert json.loads((run_dir / "kpis" / "kpis.json").read_text())["buyers"] == saved["kpis"]["buyers"] > 0
    for chart in ("cohorts.png", "views.png"):
        assert (run_dir / "kpis" / chart).read_bytes().startswith(b"\x89PNG")


def test_the_ui_shows_a_report_without_personal_data(aws: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    shop = write_shop(_lapsed_shop(6), tmp_path / "shop")

    summary = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["daily-run"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert artifacts and artifacts[0].type == "markdown"
    report = str(artifacts[0].data)
    assert f"Sent {summary.sent} new messages" in report
    assert "| sent | 7 |" in report
    for personal in ("@example.com", "Мария", "Zofia", "Анна", "+7"):
        assert personal not in report


def test_dry_run_renders_but_sends_and_claims_nothing(aws: str, tmp_path: Path) -> None:
    shop = write_shop(_lapsed_shop(6), tmp_path / "shop")

    dry = daily_run(as_of=AS_OF, data=str(shop), dry_run=True, now=MORNING)
    real = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    assert dry.dry_run and dry.sent == 0 and dry.rendered == 7
    assert dry.headline().startswith("DRY RUN")
    assert real.sent == 7  # the dry run left no claims behind
    assert _ses_sent() == 7


def test_suppressed_address_is_not_sent(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = write_shop(_lapsed_shop(3), tmp_path / "shop")
    SuppressionList(tmp_path / "state" / "suppressions.sqlite").add(Channel.EMAIL, "l1@example.com", "complaint")

    summary = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    assert summary.sent == 3
    assert summary.skipped_by_reason == {"suppressed": 1}


def test_one_message_that_cannot_be_built_fails_alone_and_the_run_reports_it(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.deliver.channels
    from tasks.deliver.channels import EmailMessageOut
    from tasks.kernel.enums import SendStatus
    from tasks.ledger.sqlite import SqliteLedger

    frames = _lapsed_shop(6)
    customers = frames[Table.CUSTOMERS]
    customers.loc[customers["customer_id"] == "L0001", "first_name"] = "Zofia\nBcc: x@evil.example"
    shop = write_shop(frames, tmp_path / "shop")
    build_mime = tasks.deliver.channels.build_mime

    def unbuildable_for_l2(message: EmailMessageOut, *args: Any) -> bytes:
        if message.to_address == "l2@example.com":  # what a line break in a header did before
            raise ValueError("Header values may not contain linefeed or carriage return characters")
        return build_mime(message, *args)

    monkeypatch.setattr(tasks.deliver.channels, "build_mime", unbuildable_for_l2)

    summary = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    assert (summary.sent, summary.failed) == (6, 1) and _ses_sent() == 6
    saved = json.loads((Path(summary.run_dir) / "summary.json").read_text())
    assert (saved["sent"], saved["failed"]) == (6, 1)
    outcomes = pd.concat(pd.read_parquet(f) for f in sorted((Path(summary.run_dir) / "delivery").glob("*.parquet")))
    failed = outcomes.loc[outcomes["outcome"] == "failed"]
    assert failed[["customer_id", "reason"]].values.tolist() == [["L0002", "ValueError"]]
    [entry] = [e for e in SqliteLedger(tmp_path / "state" / "ledger.sqlite").entries() if e.customer_id == "L0002"]
    assert entry.status is SendStatus.FAILED  # no claim left stuck


def test_a_failed_delivery_shard_still_gets_the_run_reported(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.deliver.delivery
    from flows.waves import ShardsFailedError
    from tasks.deliver.delivery import Outgoing
    from tasks.kernel.paths import RunPaths
    from tasks.kernel.settings import Settings

    monkeypatch.setenv("LOYALTY_SHARD_SIZE", "2")
    shop = write_shop(_lapsed_shop(6), tmp_path / "shop")
    outgoing = tasks.deliver.delivery.outgoing_from_rendered

    def broken_for_l2(rendered: pd.DataFrame, *args: Any) -> list[Outgoing]:
        if "L0002" in set(rendered["customer_id"]):
            raise RuntimeError("a bug in one shard")
        return outgoing(rendered, *args)

    monkeypatch.setattr(tasks.deliver.delivery, "outgoing_from_rendered", broken_for_l2)

    with pytest.raises(ShardsFailedError, match="1 delivery shards failed"):
        daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    saved = json.loads(RunPaths.for_day(Settings().output_dir, AS_OF).summary.read_text())
    assert saved["failed_shards"] == 1
    assert 5 <= saved["sent"] == _ses_sent() < 7  # every other shard went out


def test_template_error_stops_the_run_before_anything_is_sent(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from tasks.kernel.settings import PROJECT_ROOT
    from tasks.render.templating import RenderError

    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    (templates / "win_back" / "pl" / "subject.txt.j2").write_text("{{ frist_name }}", encoding="utf-8")
    monkeypatch.setenv("LOYALTY_TEMPLATES_DIR", str(templates))
    monkeypatch.setenv("LOYALTY_SHARD_SIZE", "2")  # several shards: none may send
    shop = write_shop(_lapsed_shop(9), tmp_path / "shop")

    with pytest.raises(RenderError, match=r"win_back/pl/subject\.txt\.j2: 'frist_name' is undefined"):
        daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    assert _ses_sent() == 0


def test_a_campaign_on_email_and_sms_sends_each_channel_once_to_those_who_agreed(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from tasks.kernel.settings import PROJECT_ROOT
    from tasks.render.sms import sms_parts

    campaigns = tmp_path / "campaigns"
    shutil.copytree(PROJECT_ROOT / "campaigns", campaigns)
    yaml_file = campaigns / "win_back.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("channels: [email]", "channels: [email, sms]"))
    monkeypatch.setenv("LOYALTY_CAMPAIGNS_DIR", str(campaigns))
    monkeypatch.setenv("LOYALTY_SMS_RATE", "100")
    frames = _lapsed_shop(12)
    customers = frames[Table.CUSTOMERS]
    phones = {  # ru and pl numbers as shops store them; SMS opt-in for all but L0004
        f"L{i:04d}": f"8 (912) 345-67-{i:02d}" if i % 3 == 0 else f"512 345 6{i:02d}" for i in range(12) if i % 3 != 2
    }
    customers["phone"] = customers["customer_id"].map(phones).fillna(customers["phone"])
    opted = customers["customer_id"].isin([c for c in phones if c != "L0004"])
    customers.loc[opted, ["sms_opt_in", "sms_opt_in_at"]] = ["true", "2023-01-01T00:00:00Z"]
    shop = write_shop(frames, tmp_path / "shop")
    SuppressionList(tmp_path / "state" / "suppressions.sqlite").add(Channel.SMS, "+48512345601", "sms_opt_out")

    first = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)
    outbox = Path(first.run_dir) / "outbox" / "win_back"
    sms_files = sorted(p.name for p in outbox.glob("*-sms.*"))
    second = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    # SMS: opted in, a phone, not held out (the same customers as on email), not opted out by phone (L0001)
    want = sorted(set(c for c in phones if c not in ("L0004", "L0001")) - set(_held_out(list(phones))))
    sms = sms_in_moto(aws)
    assert len(sms) == len(want) == first.sent_by_channel["sms"] >= 3
    assert len({m["phone_number"] for m in sms}) == len(sms)  # nobody got two
    assert {m["phone_number"][:3] for m in sms} <= {"+79", "+48"}
    for message in sms:
        assert "ch=sms" in message["message"] and "https://" in message["message"]  # the opt-out link
        assert sms_parts(message["message"]).parts <= 3
    assert first.sent_by_channel["email"] == _ses_sent() == first.sent - len(sms)
    plan = pd.read_parquet(Path(first.run_dir) / "plan" / "plan.parquet")
    assert plan.loc[plan["customer_id"] == "L0001"].set_index("channel")["reason"].to_dict()["sms"] == "suppressed"
    assert second.sent == 0 and len(sms_in_moto(aws)) == len(sms)
    assert sms_files == [f"{c}-sms.txt" for c in want]  # an SMS has its text only in the outbox


def test_a_sampled_outbox_shows_the_first_messages_of_each_language_and_every_message_is_still_sent(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOYALTY_OUTBOX_SAMPLE", "2")
    shop = write_shop(_lapsed_shop(18), tmp_path / "shop")

    summary = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    run_dir = Path(summary.run_dir)
    rendered = pd.concat([pd.read_parquet(p) for p in sorted((run_dir / "render").glob("rendered-*.parquet"))])
    written = rendered.loc[rendered["text_file"] != ""]
    # the record holds every message and delivery sends them all; the outbox has the first two of each language
    assert summary.sent == summary.rendered == len(rendered) == _ses_sent() > len(written)
    pd.testing.assert_frame_equal(written, rendered.groupby(["campaign", "channel", "locale"]).head(2))
    outbox = run_dir / "outbox"
    assert sorted(str(p.relative_to(outbox)) for p in outbox.glob("*/*")) == sorted(
        [*written["html_file"], *written["text_file"]]
    )
    index = (outbox / "index.html").read_text()
    assert index.count("<tr><td>") == len(written)
    assert (
        f"<p>Showing {len(written)} of {len(rendered)} rendered messages: up to 2 per campaign, channel and "
        "language of each shard; every message is in the run folder's render/rendered-*.parquet.</p>"
    ) in index


def test_a_run_that_starts_at_night_holds_every_message_until_a_daytime_run(aws: str, tmp_path: Path) -> None:
    shop = write_shop(_lapsed_shop(6), tmp_path / "shop")
    night = datetime(2024, 6, 1, 23, 30, tzinfo=UTC)  # Moscow 02:30, Warsaw 01:30, London 00:30

    late = daily_run(as_of=AS_OF, data=str(shop), now=night)
    morning = daily_run(as_of=date(2024, 6, 2), data=str(shop), now=datetime(2024, 6, 2, 3, 0, tzinfo=UTC))

    assert late.to_send == late.held_quiet_hours == 7 and late.sent == 0  # C1 and six lapsed: nobody at night
    assert morning.sent == 7  # not dropped: the next day's run sends them, each at 10:00 their time


def test_waves_go_out_in_send_time_order_one_per_time_zone(aws: str, tmp_path: Path) -> None:
    shop = write_shop(_lapsed_shop(6), tmp_path / "shop")
    summary = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    assert summary.sent == 7
    shards = sorted(Path(summary.run_dir).glob("plan/send-*.parquet"))  # numbered in sending order
    zones = [pd.read_parquet(s)["timezone"].unique().tolist() for s in shards]
    # 10:00 local: Moscow (07:00 UTC), then Warsaw (08:00 UTC), then London (09:00 UTC), a shard each
    assert zones == [["Europe/Moscow"], ["Europe/Warsaw"], ["Europe/London"]]
