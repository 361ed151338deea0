"""Two hosts, one DynamoDB: each sees what the other planned and whom the other suppressed.

Each host has its own state and output folders (nothing on disk is shared); only the backend chosen by
``LOYALTY_STATE_BACKEND=dynamodb`` is. Before, a fresh output folder forgot every plan (the budget) and
each host kept its own suppressions file.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from uuid import uuid4

import pandas as pd
import pytest

from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.data.sources import load_raw
from tasks.data.validation import validate_snapshot
from tasks.kernel.aws import client, dynamodb_client
from tasks.kernel.enums import Channel, Table, Topic
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.ledger.backend import open_ledger
from tasks.ledger.dynamodb import create_ledger_table
from tasks.ledger.protocol import Claim
from tasks.plan.campaigns import Campaign, load_catalog
from tasks.plan.gates import DeliveryRules
from tasks.plan.history import marketing_history
from tasks.plan.planner import (
    Planning,
    campaign_candidates,
    commit_shards,
    current_suppressions,
    ledger_lookup,
    message_people,
    plan_candidates,
)
from tasks.plan.triggers import ShopData
from tasks.profile.features import build_profile
from tasks.state.backend import open_state
from tasks.state.dynamodb import create_state_table
from tests.shops import tiny_shop, write_shop

CATALOG = load_catalog(PROJECT_ROOT / "campaigns")
WIN_BACK, WEEKLY_SALE = CATALOG["win_back"], CATALOG["weekly_sale"]
# a Friday (the weekly sale's day); C1 of the tiny shop lapsed on 1 May: the win-back's first step is due
AS_OF = date(2024, 5, 3)


@pytest.fixture
def hosts(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Settings]:
    """Two hosts' settings: their own folders, one DynamoDB state table and ledger, one signing secret."""
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", "one-secret-every-host-shares-0123456789")
    state, ledger = f"state-{uuid4().hex[:8]}", f"ledger-{uuid4().hex[:8]}"
    create_state_table(client("dynamodb", Settings()), state)
    create_ledger_table(client("dynamodb", Settings()), ledger)

    def host(name: str) -> Settings:
        return Settings(
            state_dir=tmp_path / name / "state",
            output_dir=tmp_path / name / "out",
            state_backend="dynamodb",
            state_table=state,
            ledger_table=ledger,
        )

    return host("a"), host("b")


def _plan_day(settings: Settings, shop: Path, campaign: Campaign = WIN_BACK) -> pd.DataFrame:
    """Plan and commit a campaign on ``AS_OF`` on one host, as the daily run does (its gates, its commit)."""
    snapshot = validate_snapshot(load_raw(str(shop)), AS_OF)
    customers = snapshot.frames[Table.CUSTOMERS]
    frames = {t.value: f for t, f in snapshot.frames.items()} | {
        "profile": build_profile(snapshot.frames, AS_OF).profile
    }
    paths = RunPaths.for_day(settings.output_dir, AS_OF)
    planning = Planning(
        as_of=AS_OF,
        sending_at=datetime.combine(AS_OF, time(3), UTC),
        rules=DeliveryRules(),
        catalog={campaign.name: campaign},
        suppressed=current_suppressions(SuppressionList.for_settings(settings)),
        history=marketing_history(settings.output_dir, AS_OF, exclude=paths.plan, store=open_state(settings).history),
        already=ledger_lookup(settings),
    )
    candidates = campaign_candidates(campaign, ShopData.from_frames(AS_OF, frames), AS_OF)
    plan = plan_candidates([(campaign, candidates)], customers, planning)
    commit_shards(plan, message_people(customers, None), paths, settings, {campaign.name: campaign})
    return plan.set_index("customer_id")


def test_a_second_host_with_a_fresh_output_folder_counts_the_first_hosts_plan_in_the_budget(
    hosts: tuple[Settings, Settings], tmp_path: Path
) -> None:
    a, b = hosts
    shop = write_shop(tiny_shop(), tmp_path / "shop")
    assert _plan_day(a, shop, WIN_BACK).loc["C1", "decision"] == "send"

    on_b = _plan_day(b, shop, WEEKLY_SALE)

    # one marketing message a day: A's win-back took C1's room
    assert (on_b.loc["C1", "decision"], on_b.loc["C1", "reason"]) == ("skipped", "frequency_cap")
    assert on_b.loc["C2", "decision"] == "send"
    # host A planning its day again replaces its own plan, so it still sends (it does not count itself twice)
    assert _plan_day(a, shop, WIN_BACK).loc["C1", "decision"] == "send"


def test_a_second_host_skips_what_the_first_one_sent(hosts: tuple[Settings, Settings], tmp_path: Path) -> None:
    a, b = hosts
    shop = write_shop(tiny_shop(), tmp_path / "shop")
    key = _plan_day(a, shop).loc["C1", "idempotency_key"]
    ledger = open_ledger(a, dynamodb_client)  # A's delivery: claim, send, mark
    ledger.claim(Claim(key, WIN_BACK.name, "email", "C1", "marketing", "run-a"))
    ledger.mark_sent(key, "ses-1", run_id="run-a")

    on_b = _plan_day(b, shop)

    assert (on_b.loc["C1", "decision"], on_b.loc["C1", "reason"]) == ("skipped", "duplicate")


@pytest.mark.parametrize("how", ["unsubscribe", "complaint"])
def test_an_unsubscribe_or_complaint_recorded_on_one_host_suppresses_on_the_other(
    hosts: tuple[Settings, Settings], tmp_path: Path, how: str
) -> None:
    a, b = hosts
    shop = write_shop(tiny_shop(), tmp_path / "shop")
    on_a = SuppressionList.for_settings(a)
    if how == "unsubscribe":
        on_a.add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE, topic=Topic.MARKETING)
    else:
        on_a.add(Channel.EMAIL, "anna@example.com", SuppressionReason.COMPLAINT)

    on_b = _plan_day(b, shop)

    assert (on_b.loc["C1", "decision"], on_b.loc["C1", "reason"]) == ("skipped", "suppressed")
    assert not (b.state_dir / "suppressions.sqlite").exists()
