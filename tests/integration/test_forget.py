"""``loyalty forget``: a customer who was planned and sent is erased from every run file, store and outbox,
is not contacted again (not under a new id either), and nobody else is touched."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.daily_run import daily_run
from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.kernel.enums import Channel, Table, Topic
from tasks.kernel.settings import Settings
from tasks.ledger.sqlite import SqliteLedger
from tasks.state.backend import open_state
from tests.conftest import REGION
from tests.shops import add_rows, tiny_shop, write_shop

AS_OF = date(2024, 6, 1)
MORNING = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("prefect_harness", "win_back_only")


def _shop(extra: list[dict[str, str]] = ()) -> dict[Table, pd.DataFrame]:  # type: ignore[assignment]
    """The tiny shop plus three customers whose last order was 100 days before AS_OF (the win-back is due)."""
    people = [(f"L{i}", f"l{i}@example.com") for i in range(3)] + [(e["customer_id"], e["email"]) for e in extra]
    customers = [
        {
            "customer_id": cid,
            "email": email,
            "first_name": "Zofia",
            "gender": "f",
            "locale": "pl",
            "timezone": "Europe/Warsaw",
            "country": "PL",
            "created_at": "2023-01-01T00:00:00Z",
            "email_opt_in": "true",
            "sms_opt_in": "false",
        }
        for cid, email in people
    ]
    orders = [
        {
            "order_id": f"O-{cid}",
            "customer_id": cid,
            "created_at": "2024-02-22T10:00:00Z",
            "status": "delivered",
            "total": "10",
            "currency": "EUR",
        }
        for cid, _ in people
    ]
    return add_rows(add_rows(tiny_shop(), Table.CUSTOMERS, customers), Table.ORDERS, orders)


def _ses_sent() -> int:
    return int(boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"])


def _files_holding(output: Path, customer_id: str) -> list[str]:
    found = []
    for path in output.rglob("*"):
        if path.suffix == ".parquet" and "customer_id" in pq.read_schema(path).names:
            ids = pd.read_parquet(path, columns=["customer_id"])["customer_id"].astype(str)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str)
            ids = frame["customer_id"] if "customer_id" in frame.columns else pd.Series(dtype=str)
        elif path.suffix in {".txt", ".html"}:
            ids = pd.Series(
                [customer_id] if f"/{customer_id}-" in str(path) or f">{customer_id}<" in path.read_text() else []
            )
        else:
            continue
        if (ids == customer_id).any():
            found.append(str(path.relative_to(output)))
    return found


def test_a_forgotten_customer_is_erased_everywhere_and_never_contacted_again(aws: str, tmp_path: Path) -> None:
    shop = write_shop(_shop(), tmp_path / "shop")
    first = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)
    settings = Settings()
    assert first.sent == 4 and _files_holding(settings.output_dir, "L1")
    SuppressionList.for_settings(settings).add_customer(Channel.EMAIL, "L1", "unsubscribe", topic=Topic.MARKETING)
    ledger_keys = {e.key for e in SqliteLedger(settings.state_dir / "ledger.sqlite").entries()}

    result = CliRunner().invoke(app, ["forget", "L1", "--yes"])

    assert result.exit_code == 0, result.output
    assert "@" not in result.output and "Zofia" not in result.output
    assert "ledger entries unlinked (keys kept, nothing is resent): 1" in result.output
    # gone from every run file, outbox and store
    assert _files_holding(settings.output_dir, "L1") == []
    entries = SqliteLedger(settings.state_dir / "ledger.sqlite").entries()
    assert {e.key for e in entries} == ledger_keys
    assert "L1" not in {e.customer_id for e in entries}
    state = open_state(settings)
    assert "L1" not in {r.customer_id for r in state.history.read(date(2024, 5, 1), date(2024, 7, 1))}
    suppressions = SuppressionList.for_settings(settings)
    assert "L1" not in suppressions.customers(Channel.EMAIL, Topic.MARKETING)
    assert suppressions.reason(Channel.EMAIL, "l1@example.com") is SuppressionReason.FORGOTTEN
    # the others are untouched
    assert {"L0", "L2"} <= {e.customer_id for e in entries}
    assert {"L0", "L2"} <= {r.customer_id for r in state.history.read(date(2024, 5, 1), date(2024, 7, 1))}
    assert suppressions.reason(Channel.EMAIL, "l0@example.com") is None

    # the day again, with the customer re-imported, and once more under a new id: nobody new hears anything
    sent = _ses_sent()
    again = write_shop(_shop([{"customer_id": "L1-new", "email": "L1@example.com"}]), tmp_path / "again")
    rerun = daily_run(as_of=AS_OF, data=str(again), now=MORNING)

    assert rerun.sent == 0 and _ses_sent() == sent
    plan = pd.read_parquet(settings.output_dir / "2024-06-01" / "plan" / "plan.parquet").set_index("customer_id")
    assert plan.loc[["L1", "L1-new"], "reason"].tolist() == ["suppressed", "suppressed"]
    assert plan.loc[["L0", "L2"], "reason"].tolist() == ["duplicate", "duplicate"]


def test_forgetting_a_customer_whose_messages_the_sampled_outbox_left_out_counts_them_out_of_its_index(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOYALTY_OUTBOX_SAMPLE", "1")
    shop = write_shop(_shop(), tmp_path / "shop")
    first = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)
    run_dir = Path(first.run_dir)
    rendered = pd.concat([pd.read_parquet(p) for p in (run_dir / "render").glob("rendered-*.parquet")])
    unlisted = str(rendered.loc[rendered["text_file"] == "", "customer_id"].iloc[0])  # rendered, no outbox file
    shown = int((rendered["text_file"] != "").sum())
    index = run_dir / "outbox" / "index.html"
    assert f"Showing {shown} of {first.rendered} rendered messages" in index.read_text()

    result = CliRunner().invoke(app, ["forget", unlisted, "--yes"])

    assert result.exit_code == 0, result.output
    assert "outbox messages deleted: 0 files" in result.output
    assert _files_holding(Settings().output_dir, unlisted) == []
    assert f"Showing {shown} of {first.rendered - 1} rendered messages" in index.read_text()


def test_forget_erases_the_customer_from_run_folders_kept_in_s3(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="runs", CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("LOYALTY_OUTPUT_DIR", "s3://runs/shop")
    shop = write_shop(_shop(), tmp_path / "shop")
    assert daily_run(as_of=AS_OF, data=str(shop), now=MORNING).sent == 4
    settings = Settings()
    before = {o["Key"] for o in s3.list_objects_v2(Bucket="runs")["Contents"]}

    result = CliRunner().invoke(app, ["forget", "L1", "--yes"])

    assert result.exit_code == 0, result.output
    # what S3 holds now, brought down whole into a folder of the test's own: nothing of L1 is left
    copy = tmp_path / "copy"
    after = {o["Key"] for o in s3.list_objects_v2(Bucket="runs")["Contents"]}
    for key in after:
        target = copy / key
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file("runs", key, str(target))
    assert _files_holding(copy, "L1") == []
    assert _files_holding(copy, "L0")  # the others' rows are still there
    assert {k for k in before - after} and all("/outbox/" in k for k in before - after)  # only L1's messages went
    assert not settings.output_dir.exists() or not any(settings.output_dir.rglob("*.parquet"))  # no copy left behind
