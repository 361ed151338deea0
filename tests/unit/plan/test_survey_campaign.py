"""The survey's triggers and catalog: asked after delivery at most once in 90 days, promoters picked by score,
and the shop's choice of marketing or service message."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from tasks.kernel.enums import MessageKind, OrderStatus
from tasks.plan.campaigns import OrderTrigger, SurveyTrigger, load_catalog, survey_kind
from tasks.plan.triggers import ShopData
from tasks.profile.unhappy import incidents
from tests.unit.plan.test_triggers import _customer, _fired, _order, _shop

REPO = Path(__file__).resolve().parents[3]
ASKED = OrderTrigger(type="order", status=OrderStatus.DELIVERED, once_in_days=90)


def _deliveries(*days: str) -> ShopData:
    """One customer, an order delivered at noon UTC on each of ``days``."""
    orders = [_order(f"O{n}", "C1", f"{d}T08:00:00Z") for n, d in enumerate(days)]
    events = [(f"O{n}", "delivered", f"{d}T12:00:00Z") for n, d in enumerate(days)]
    return _shop([_customer("C1")], orders=orders, order_events=events)


def test_a_delivery_within_90_days_of_the_last_one_asked_about_is_not_asked_about() -> None:
    data = _deliveries("2026-01-01", "2026-03-01", "2026-03-31", "2026-06-30", "2026-07-01")

    fired = _fired(ASKED, data, date(2025, 12, 1), date(2026, 12, 31))

    # 1 Jan asked; 1 and 31 March are 59 and 89 days later; 30 June is 180 days later; 1 July a day after it
    assert fired == [("C1", "2026-01-01", "O0"), ("C1", "2026-06-30", "O3")]


def test_the_90_days_count_from_the_last_delivery_asked_about_even_before_the_window() -> None:
    data = _deliveries("2026-01-01", "2026-03-15")

    assert _fired(ASKED, data, date(2026, 3, 1), date(2026, 3, 31)) == []
    assert _fired(ASKED.model_copy(update={"once_in_days": None}), data, date(2026, 3, 1), date(2026, 3, 31)) == [
        ("C1", "2026-03-15", "O1")
    ]


def test_promoters_are_the_answers_scored_9_or_10_on_their_local_day() -> None:
    answers = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3"],
            "order_id": ["O1", "O2", "O3"],
            "score": [9, 8, 10],
            "answered_at": pd.to_datetime(["2026-03-10T23:30:00Z"] * 3, utc=True),
        }
    )
    customers = [_customer("C1", "Asia/Vladivostok"), _customer("C2"), _customer("C3")]
    data = _shop(customers, details={"survey_answers": answers})

    fired = _fired(SurveyTrigger(type="survey", min_score=9), data, date(2026, 3, 1), date(2026, 3, 31))

    assert fired == [("C1", "2026-03-11", "O1"), ("C3", "2026-03-10", "O3")]


def test_without_answers_no_promoter_fires() -> None:
    data = _shop([_customer("C1")])

    assert _fired(SurveyTrigger(type="survey", min_score=9), data, date(2026, 3, 1), date(2026, 3, 31)) == []


def test_the_survey_is_marketing_unless_the_shop_makes_it_a_service_message() -> None:
    catalog = load_catalog(REPO / "campaigns")

    assert catalog["survey"].kind is MessageKind.MARKETING
    assert survey_kind(catalog, False)["survey"].kind is MessageKind.MARKETING
    service = survey_kind(catalog, True)
    assert service["survey"].kind is MessageKind.TRANSACTIONAL
    assert service["survey_review"].kind is MessageKind.MARKETING  # the review request stays a promotion


def test_a_detractors_answer_is_a_low_score_incident_and_a_passive_or_promoter_is_none() -> None:
    orders = pd.DataFrame(
        {"order_id": ["O1"], "customer_id": ["C1"], "created_at": pd.to_datetime(["2026-03-01"], utc=True)}
    )
    no_events = pd.DataFrame({"order_id": [], "status": [], "at": pd.to_datetime([], utc=True)})
    reviews = pd.DataFrame({"customer_id": [], "product_id": [], "type": [], "at": [], "rating": []})
    answers = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3", "C4"],
            "order_id": ["O1", "O2", "O3", "O4"],
            "score": [0, 6, 7, 10],
            "answered_at": pd.to_datetime([datetime(2026, 3, 5, 9, tzinfo=UTC)] * 4, utc=True),
        }
    )

    found = incidents(orders, no_events, reviews, answers=answers)

    assert found[["customer_id", "order_id", "reason"]].values.tolist() == [
        ["C1", "O1", "low_score"],
        ["C2", "O2", "low_score"],
    ]
