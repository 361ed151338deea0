"""The daily run's merge of the preferences: the facts a customer gave fill only what the shop's data leaves empty,
and the planner's copy carries their choices."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from tasks.state.preference_snapshot import fill_profile_facts, preferences_frame
from tasks.state.preferences import Preferences

AT = datetime(2024, 6, 1, tzinfo=UTC)


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3"],
            "birth_date": pd.to_datetime(["1980-01-15", None, None]),
            "gender": ["m", "unknown", "f"],
        }
    )


def test_the_shops_own_facts_win_and_the_customers_fill_the_gaps() -> None:
    given = [
        Preferences("C1", birthday=date(1990, 4, 20), gender="f", pets="dog", updated_at=AT),
        Preferences("C2", birthday=date(1992, 6, 7), gender="f", updated_at=AT),
    ]

    out = fill_profile_facts(_customers(), given).set_index("customer_id")

    assert out.at["C1", "birth_date"] == pd.Timestamp("1980-01-15") and out.at["C1", "gender"] == "m"
    assert out.at["C1", "pets"] == "dog"
    assert out.at["C2", "birth_date"] == pd.Timestamp("1992-06-07") and out.at["C2", "gender"] == "f"
    assert pd.isna(out.at["C2", "pets"])
    assert pd.isna(out.at["C3", "birth_date"]) and out.at["C3", "gender"] == "f" and pd.isna(out.at["C3", "pets"])
    assert str(out["birth_date"].dtype) == "datetime64[ns]"


def test_a_pets_column_the_shop_gives_keeps_its_values() -> None:
    customers = _customers().assign(pets=["cat", None, None])

    out = fill_profile_facts(customers, [Preferences("C1", pets="dog", updated_at=AT)]).set_index("customer_id")

    assert out.at["C1", "pets"] == "cat"


def test_the_planners_copy_has_the_choices_and_no_facts() -> None:
    frame = preferences_frame(
        [
            Preferences(
                "C1",
                topics_off=frozenset({"personal_picks", "news_and_sales"}),
                channels_off=frozenset({"sms"}),
                frequency="paused",
                paused_until=date(2024, 7, 1),
                birthday=date(1990, 4, 20),
                updated_at=AT,
            )
        ]
    )

    assert frame.to_dict("records") == [
        {
            "customer_id": "C1",
            "topics_off": "news_and_sales,personal_picks",
            "channels_off": "sms",
            "frequency": "paused",
            "paused_until": "2024-07-01",
        }
    ]
