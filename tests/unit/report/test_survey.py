"""The weekly survey report on a hand-made week: NPS arithmetic, by week, category and lateness, themes in three
languages, and quotes without who wrote them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tasks.report.survey import iso_week, nps, nps_chart, report_markdown, survey_report, themes_of
from tasks.state.surveys import SurveyAnswer

MONDAY = datetime(2024, 5, 27, 9, 0, tzinfo=UTC)  # ISO week 2024-W22
WEEK = "2024-W22"


def _answer(customer: str, order: str, score: int, comment: str = "", at: datetime = MONDAY) -> SurveyAnswer:
    return SurveyAnswer(customer, order, score, comment, at)


def test_nps_is_the_share_of_promoters_minus_the_share_of_detractors() -> None:
    # 3 promoters, 2 passives, 5 detractors of 10: 30% - 50%
    assert nps(pd.Series([9, 10, 10, 7, 8, 0, 3, 5, 6, 6])) == -20.0
    assert nps(pd.Series([10, 9])) == 100.0
    assert math.isnan(nps(pd.Series([], dtype=int)))


def test_an_iso_week_runs_from_monday_to_monday_utc() -> None:
    assert iso_week("2024-W22") == (datetime(2024, 5, 27, tzinfo=UTC), datetime(2024, 6, 3, tzinfo=UTC))
    with pytest.raises(ValueError, match="YYYY-Www"):
        iso_week("2024-22")


def _shop() -> dict[str, pd.DataFrame]:
    orders = pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4"],
            "created_at": pd.to_datetime(["2024-05-10", "2024-05-10", "2024-05-10", "2024-05-10"], utc=True),
        }
    )
    # promised 7 days after the order (17 May): O1 on time, O2 two days late, O3 six days late, O4 not delivered
    events = pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3"],
            "status": ["delivered"] * 3,
            "at": pd.to_datetime(["2024-05-16T12:00Z", "2024-05-19T12:00Z", "2024-05-23T12:00Z"], utc=True),
        }
    )
    items = pd.DataFrame({"order_id": ["O1", "O1", "O2", "O3", "O4"], "product_id": ["P1", "P2", "P1", "P2", "P1"]})
    products = pd.DataFrame({"product_id": ["P1", "P2"], "category": ["cat_food", "toys"]})
    return {"orders": orders, "order_events": events, "order_items": items, "products": products}


def test_the_week_is_broken_down_by_category_and_by_lateness() -> None:
    answers = [
        _answer("C1", "O1", 10, "Быстрая доставка, спасибо!"),
        _answer("C2", "O2", 6, "Paczka przyszła zgnieciona, opakowanie do poprawy"),
        _answer("C3", "O3", 0, "Delivery was late and the price too high"),
        _answer("C4", "O4", 8),
        _answer("C5", "O9", 9, "", MONDAY - timedelta(weeks=1)),  # the week before: by week only
    ]
    shop = _shop()

    report = survey_report(
        answers, WEEK, shop["orders"], shop["order_items"], shop["products"], shop["order_events"], 7
    )

    assert report.answers == 4 and report.nps == -25.0  # 1 promoter, 1 passive, 2 detractors of 4
    weeks = report.by_week.set_index("week")
    assert list(weeks.index[-2:]) == ["2024-W21", WEEK] and len(weeks) == 8
    assert list(weeks.loc["2024-W21", ["answers", "nps"]]) == [1, 100.0]
    assert weeks.loc["2024-W20", "answers"] == 0
    by_category = report.by_category.set_index("category")
    # O1 has both categories; cat_food: O1 (10), O2 (6), O4 (8); toys: O1 (10), O3 (0)
    assert list(by_category.loc["cat_food", ["answers", "promoters", "detractors", "nps"]]) == [3, 1, 1, 0.0]
    assert list(by_category.loc["toys", ["answers", "nps"]]) == [2, 0.0]
    by_lateness = report.by_lateness.set_index("lateness")
    assert by_lateness["nps"].to_dict() == {
        "on time": 100.0,
        "1-3 days late": -100.0,
        "later": -100.0,
        "not known": 0.0,
    }


def test_comment_themes_are_found_in_russian_polish_and_english() -> None:
    assert themes_of("Курьер опоздал, а упаковка порвана") == [("delivery", "ru"), ("packaging", "ru")]
    assert themes_of("Świetna jakość, ale dostawa trwała tydzień") == [("delivery", "pl"), ("quality", "pl")]
    assert themes_of("Great quality for the price") == [("quality", "en"), ("price", "en")]
    assert themes_of("Ocena: wszystko super") == []  # "cen" only at the start of a word: an "ocena" is no price


def test_themes_are_counted_per_language_and_quoted_without_names(tmp_path: Path) -> None:
    answers = [
        _answer("C1", "O1", 3, "Доставка опоздала на три дня"),
        _answer("C2", "O2", 4, "Dostawa za długa"),
        _answer("C3", "O3", 2, "The delivery took ages"),
        _answer("C4", "O4", 9, "Хорошее качество"),
    ]

    report = survey_report(answers, WEEK)

    themes = report.themes.set_index("theme")
    assert list(themes.loc["delivery", ["ru", "pl", "en", "comments"]]) == [1, 1, 1, 3]
    assert themes.loc["quality", "comments"] == 1 and themes.loc["price", "comments"] == 0
    assert report.by_category["category"].tolist() == ["not known"]  # no shop tables: nothing invented
    markdown = report_markdown(report)
    assert "> Доставка опоздала на три дня" in markdown
    assert "C1" not in markdown and "O1" not in markdown
    assert nps_chart(report, tmp_path / "nps.png").stat().st_size > 1000
