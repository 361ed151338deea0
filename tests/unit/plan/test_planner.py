"""The win-back plan: who is a candidate, which step is due, which gate stops whom, and the idempotency key."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.data.sources import load_raw
from tasks.data.validation import validate_snapshot
from tasks.kernel.enums import Channel, Table, Topic
from tasks.kernel.settings import PROJECT_ROOT
from tasks.plan.campaigns import load_catalog
from tasks.plan.gates import DeliveryRules
from tasks.plan.pauses import NO_PAUSES, CampaignPauses
from tasks.plan.planner import Planning, Suppressed, campaign_candidates, current_suppressions, plan_candidates
from tasks.plan.triggers import ShopData
from tasks.profile.features import build_profile
from tests.shops import add_rows, tiny_shop, write_shop

WIN_BACK = load_catalog(PROJECT_ROOT / "campaigns")["win_back"]


def _plan(tmp_path: Path, frames, as_of: date, suppressed=frozenset(), pauses=NO_PAUSES):  # type: ignore[no-untyped-def]
    snapshot = validate_snapshot(load_raw(str(write_shop(frames, tmp_path / "shop"))), as_of)
    customers = snapshot.frames[Table.CUSTOMERS]
    frames = {t.value: f for t, f in snapshot.frames.items()} | {
        "profile": build_profile(snapshot.frames, as_of).profile
    }
    candidates = campaign_candidates(WIN_BACK, ShopData.from_frames(as_of, frames), as_of)
    planning = Planning(
        as_of=as_of,
        sending_at=datetime.combine(as_of, time(3), UTC),  # the daily run, 06:00 in Moscow
        rules=DeliveryRules(),
        catalog={WIN_BACK.name: WIN_BACK},
        suppressed=Suppressed(everything={Channel.EMAIL: suppressed}),
        pauses=pauses,
    )
    return plan_candidates([(WIN_BACK, candidates)], customers, planning)


def test_customer_lapsed_90_days_gets_one_key_per_lapse_for_the_step_window(tmp_path: Path) -> None:
    # C1's last order was 2024-02-01: day 90 is 2024-05-01; step 1 may go out until 30 days after it
    first_day = _plan(tmp_path, tiny_shop(), date(2024, 5, 1))
    late = _plan(tmp_path, tiny_shop(), date(2024, 5, 20))

    assert list(first_day["customer_id"]) == ["C1"]
    assert first_day.loc[0, "decision"] == "send"
    assert first_day.loc[0, "idempotency_key"] == "win_back/1/email/C1/2024-05-01"
    assert list(late["idempotency_key"]) == [first_day.loc[0, "idempotency_key"]]


def test_a_campaign_a_marketer_paused_is_skipped_with_its_reason(tmp_path: Path) -> None:
    paused = _plan(tmp_path, tiny_shop(), date(2024, 5, 1), pauses=CampaignPauses(frozenset({"win_back"})))
    unreachable = _plan(tmp_path, tiny_shop(), date(2024, 5, 1), pauses=CampaignPauses(all_marketing=True))
    other = _plan(tmp_path, tiny_shop(), date(2024, 5, 1), pauses=CampaignPauses(frozenset({"birthday"})))

    assert list(paused["decision"]) == ["skipped"]
    assert list(paused["reason"]) == ["campaign_paused"]
    assert list(unreachable["reason"]) == ["campaign_paused"]
    assert list(other["decision"]) == ["send"]


def test_the_stronger_second_step_is_due_three_weeks_into_the_lapse(tmp_path: Path) -> None:
    both = _plan(tmp_path, tiny_shop(), date(2024, 5, 25)).sort_values("step")

    assert list(both["idempotency_key"]) == ["win_back/1/email/C1/2024-05-01", "win_back/2/email/C1/2024-05-01"]
    assert list(both["due"]) == ["2024-05-01", "2024-05-22"]


def test_outside_the_window_nobody_is_planned(tmp_path: Path) -> None:
    assert _plan(tmp_path, tiny_shop(), date(2024, 4, 30)).empty
    assert _plan(tmp_path, tiny_shop(), date(2024, 7, 31)).empty


def test_buying_again_ends_the_lapse_and_its_series(tmp_path: Path) -> None:
    again = {
        "order_id": "O9",
        "customer_id": "C1",
        "created_at": "2024-05-10T12:00:00Z",
        "status": "delivered",
        "total": "9",
        "currency": "EUR",
    }
    frames = add_rows(tiny_shop(), Table.ORDERS, [again])

    assert _plan(tmp_path, frames, date(2024, 5, 25)).empty


def test_gates_give_one_reason_each(tmp_path: Path) -> None:
    base = {
        "gender": "f",
        "locale": "en",
        "timezone": "UTC",
        "country": "GB",
        "created_at": "2023-01-01",
        "sms_opt_in": "false",
    }
    frames = add_rows(
        tiny_shop(),
        Table.CUSTOMERS,
        [
            {**base, "customer_id": "N1", "email": "", "email_opt_in": "true"},
            {**base, "customer_id": "N2", "email": "n2@example.com", "email_opt_in": "false"},
            {**base, "customer_id": "N3", "email": "n3@example.com", "email_opt_in": "true"},
        ],
    )
    frames = add_rows(
        frames,
        Table.ORDERS,
        [
            {
                "order_id": f"ON{i}",
                "customer_id": f"N{i}",
                "created_at": "2024-02-01",
                "status": "delivered",
                "total": "1",
                "currency": "EUR",
            }
            for i in (1, 2, 3)
        ],
    )
    suppressions = SuppressionList(tmp_path / "s.sqlite")
    suppressions.add(Channel.EMAIL, "N3@Example.com", "hard_bounce")

    plan = _plan(tmp_path, frames, date(2024, 5, 1), suppressions.hashes(Channel.EMAIL)).set_index("customer_id")

    assert plan.loc["C1", "decision"] == "send"
    assert dict(plan.loc[["N1", "N2", "N3"], "reason"]) == {"N1": "no_email", "N2": "no_consent", "N3": "suppressed"}
    assert set(plan.loc[["N1", "N2", "N3"], "decision"]) == {"skipped"}


def test_send_time_is_ten_in_the_morning_in_the_customers_zone(tmp_path: Path) -> None:
    plan = _plan(tmp_path, tiny_shop(), date(2024, 5, 2))

    assert plan.loc[0, "send_at"] == pd.Timestamp("2024-05-02T07:00:00Z")  # 10:00 in Moscow (UTC+3)


# --- the one pipeline: every job plans through the same ordered gates ------------------------------------------


def _people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "email": ["a@example.com", None, "c@example.com", "d@example.com"],
            "phone": [None, None, None, None],
            "timezone": ["Europe/Warsaw"] * 4,
            "country": ["PL"] * 4,
            "email_opt_in": [True, False, False, True],
            "sms_opt_in": [False] * 4,
        }
    )


def _candidates(day: date) -> pd.DataFrame:
    iso = day.isoformat()
    return pd.DataFrame(
        {"customer_id": ["A", "B", "C", "D"], "step": 1, "occurrence": iso, "due": iso, "detail": [None] * 4}
    )


def test_a_row_two_gates_would_stop_gets_the_earlier_gates_reason() -> None:
    # B has no email and no consent (contact comes first); C has no consent and is suppressed (consent first)
    day = date(2024, 5, 2)
    campaign = WIN_BACK.model_copy(update={"holdout_share": 0.0})
    planning = Planning(
        as_of=day,
        sending_at=datetime.combine(day, time(4), UTC),
        rules=DeliveryRules(),
        catalog={campaign.name: campaign},
        suppressed=Suppressed(everything={Channel.EMAIL: frozenset({"C", "D"})}),
        already=lambda keys: set(keys[keys.str.contains("/A/")]),
    )

    plan = plan_candidates([(campaign, _candidates(day))], _people(), planning).set_index("customer_id")

    assert dict(plan["reason"]) == {"A": "duplicate", "B": "no_email", "C": "no_consent", "D": "suppressed"}


def test_a_job_changes_when_a_message_goes_not_which_gates_stop_it() -> None:
    # the same candidates planned with the daily run's send time and with a job's own ("now", no quiet hours)
    day = date(2024, 5, 2)
    campaign = WIN_BACK.model_copy(update={"holdout_share": 0.0})
    now = datetime.combine(day, time(13, 30), UTC)

    def at_once(_campaign, rows, _planning):  # type: ignore[no-untyped-def]
        return pd.Series(pd.Timestamp(now), index=rows.index), np.zeros(len(rows), dtype=bool)

    base = {"as_of": day, "sending_at": now, "rules": DeliveryRules(), "catalog": {campaign.name: campaign}}
    daily = plan_candidates([(campaign, _candidates(day))], _people(), Planning(**base))
    job = plan_candidates([(campaign, _candidates(day))], _people(), Planning(**base, schedule=at_once))

    assert list(daily["reason"]) == list(job["reason"]) == ["", "no_email", "no_consent", ""]
    assert set(daily["send_at"]) == {pd.Timestamp("2024-05-02T08:00:00Z")}  # 10:00 in Warsaw
    assert set(job["send_at"]) == {pd.Timestamp(now)}


def test_an_apology_is_a_service_message_its_coupon_only_for_those_who_accept_offers() -> None:
    # C gave no marketing consent; A already had today's marketing message: both still hear the apology
    day = date(2024, 5, 2)
    apology = load_catalog(PROJECT_ROOT / "campaigns")["service_recovery"]
    history = pd.DataFrame(
        [["A", "weekly_sale", 1, "2024-05-02", "marketing", "send", pd.Timestamp(day)]],
        columns=["customer_id", "campaign", "step", "occurrence", "kind", "decision", "day"],
    )
    planning = Planning(
        as_of=day,
        sending_at=datetime.combine(day, time(4), UTC),
        rules=DeliveryRules(),
        catalog={apology.name: apology},
        history=history,
    )

    plan = plan_candidates([(apology, _candidates(day))], _people(), planning).set_index("customer_id")

    assert dict(plan["decision"]) == {"A": "send", "B": "skipped", "C": "send", "D": "send"}
    assert dict(plan["coupon_valid_until"].fillna("none")) == {
        "A": "2024-06-01",  # 30 days from the day it goes
        "B": "none",
        "C": "none",  # no consent to offers: the apology without a coupon
        "D": "2024-06-01",
    }


def test_an_unsubscribe_from_offers_stops_marketing_and_not_service_messages_a_complaint_stops_both() -> None:
    # A unsubscribed from offers; D's address complained (everything on the channel)
    day = date(2024, 5, 2)
    catalog = load_catalog(PROJECT_ROOT / "campaigns")
    apology, win_back = catalog["service_recovery"], WIN_BACK.model_copy(update={"holdout_share": 0.0})
    planning = Planning(
        as_of=day,
        sending_at=datetime.combine(day, time(4), UTC),
        rules=DeliveryRules(),
        catalog={apology.name: apology, win_back.name: win_back},
        suppressed=Suppressed(
            everything={Channel.EMAIL: frozenset({"D"})}, marketing={Channel.EMAIL: frozenset({"A", "D"})}
        ),
    )
    ad = _candidates(day).loc[lambda f: f["customer_id"].isin(["A", "D"])]

    plan = plan_candidates([(apology, ad), (win_back, ad)], _people(), planning)

    got = {(r.customer_id, r.campaign): (r.decision, r.reason) for r in plan.itertuples()}
    assert got == {
        ("A", "service_recovery"): ("send", ""),
        ("A", "win_back"): ("skipped", "suppressed"),
        ("D", "service_recovery"): ("skipped", "suppressed"),
        ("D", "win_back"): ("skipped", "suppressed"),
    }
    assert plan.set_index(["customer_id", "campaign"]).loc[("A", "service_recovery"), "coupon_valid_until"] is None


def test_the_list_s_topics_reach_the_gate_offers_stop_marketing_and_all_stops_order_emails(tmp_path: Path) -> None:
    # A unsubscribed from offers; C by a link sent before topics (the whole channel); D's address complained
    suppressions = SuppressionList(tmp_path / "s.sqlite")
    suppressions.remember(Channel.EMAIL, [("A", "a@example.com"), ("C", "c@example.com")])
    suppressions.add_customer(Channel.EMAIL, "A", SuppressionReason.UNSUBSCRIBE, topic=Topic.MARKETING)
    suppressions.add_customer(Channel.EMAIL, "C", SuppressionReason.UNSUBSCRIBE)
    suppressions.add(Channel.EMAIL, "d@example.com", SuppressionReason.COMPLAINT)
    day = date(2024, 5, 3)  # a Friday
    catalog = load_catalog(PROJECT_ROOT / "campaigns")
    orders, sale = catalog["order_status"], catalog["weekly_sale"].model_copy(update={"holdout_share": 0.0})
    planning = Planning(
        as_of=day,
        sending_at=datetime.combine(day, time(4), UTC),
        rules=DeliveryRules(),
        catalog={orders.name: orders, sale.name: sale},
        suppressed=current_suppressions(suppressions),
    )
    shipped = _candidates(day).assign(detail=lambda f: "O-" + f["customer_id"] + " shipped")

    plan = plan_candidates([(orders, shipped), (sale, _candidates(day))], _people(), planning)

    emails = plan.loc[plan["channel"] == "email"]  # nobody here has a phone for the order's SMS copy
    got = {(r.customer_id, r.campaign): f"{r.decision}:{r.reason}".rstrip(":") for r in emails.itertuples()}
    assert got == {
        ("A", "order_status"): "send",  # the order email goes on
        ("A", "weekly_sale"): "skipped:suppressed",
        ("B", "order_status"): "skipped:no_email",
        ("B", "weekly_sale"): "skipped:no_email",
        ("C", "order_status"): "skipped:suppressed",  # an old unsubscribe keeps meaning everything
        ("C", "weekly_sale"): "skipped:no_consent",
        ("D", "order_status"): "skipped:suppressed",  # a complaint stops everything on the address
        ("D", "weekly_sale"): "skipped:suppressed",
    }


def test_the_gate_matches_keyed_hashes_of_every_secret_and_the_bare_ones_stored_before(tmp_path: Path) -> None:
    # A's address complained under today's key, D's under an earlier secret's, and C's in a row of before keys
    now, earlier = b"n" * 32, b"e" * 32
    SuppressionList(tmp_path / "s.sqlite", key=now).add(Channel.EMAIL, "A@Example.com", SuppressionReason.COMPLAINT)
    SuppressionList(tmp_path / "s.sqlite", key=earlier).add(Channel.EMAIL, "d@example.com", "complaint")
    SuppressionList(tmp_path / "s.sqlite").add(Channel.EMAIL, "c@example.com", SuppressionReason.COMPLAINT)
    day = date(2024, 5, 2)
    orders = load_catalog(PROJECT_ROOT / "campaigns")["order_status"]
    planning = Planning(
        as_of=day,
        sending_at=datetime.combine(day, time(4), UTC),
        rules=DeliveryRules(),
        catalog={orders.name: orders},
        suppressed=current_suppressions(SuppressionList(tmp_path / "s.sqlite", key=now, old_keys=(earlier,))),
    )
    shipped = _candidates(day).assign(detail=lambda f: "O-" + f["customer_id"] + " shipped")

    plan = plan_candidates([(orders, shipped)], _people(), planning)

    emails = plan.loc[plan["channel"] == "email"].set_index("customer_id")
    assert dict(emails["reason"]) == {"A": "suppressed", "B": "no_email", "C": "suppressed", "D": "suppressed"}


def test_a_replan_sends_the_sms_copy_of_a_message_whose_email_already_went_within_the_daily_cap() -> None:
    # the day's run sent A's email and parked the SMS copy (kill switch); the replay plans both again
    day = date(2024, 5, 2)
    campaign = WIN_BACK.model_copy(update={"holdout_share": 0.0, "channels": [Channel.EMAIL, Channel.SMS]})
    person = _people().iloc[[0]].assign(phone="+48512345678", sms_opt_in=True)
    planning = Planning(
        as_of=day,
        sending_at=datetime.combine(day, time(4), UTC),
        rules=DeliveryRules(),
        catalog={campaign.name: campaign},
        already=lambda keys: set(keys[keys.str.contains("/email/")]),
    )

    plan = plan_candidates([(campaign, _candidates(day).iloc[[0]])], person, planning).set_index("channel")

    # one message on two channels takes one place in the budget: the email went, the SMS goes now
    assert dict(plan["decision"]) == {"email": "skipped", "sms": "send"}
    assert plan.loc["email", "reason"] == "duplicate"
