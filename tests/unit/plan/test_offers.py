"""Coupons: one unguessable code per customer and occurrence, its validity, the registry, redemptions."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.kernel.settings import PROJECT_ROOT
from tasks.plan.campaigns import load_catalog
from tasks.plan.offers import coupon_code, redeemed_codes, registry, validity

CATALOG = load_catalog(PROJECT_ROOT / "campaigns")
KEY = b"a-test-signing-key"


def test_a_code_is_the_same_for_one_occurrence_and_differs_for_another_customer_day_or_key() -> None:
    offer = CATALOG["birthday"].offer
    assert offer is not None
    code = coupon_code(KEY, "birthday", offer, "C1", "2026-04-20")

    assert code == coupon_code(KEY, "birthday", offer, "C1", "2026-04-20")
    assert code.startswith("BDAY-") and len(code) == len("BDAY-") + 10
    others = {
        coupon_code(KEY, "birthday", offer, "C2", "2026-04-20"),
        coupon_code(KEY, "birthday", offer, "C1", "2027-04-20"),
        coupon_code(b"another-key", "birthday", offer, "C1", "2026-04-20"),
    }
    assert code not in others and len(others) == 3


def test_the_birthday_coupon_is_valid_from_the_first_step_through_the_last() -> None:
    campaign = CATALOG["birthday"]
    assert campaign.offer is not None

    assert validity(campaign, campaign.offer, date(2026, 4, 20)) == (date(2026, 4, 13), date(2026, 4, 23))


def test_the_registry_lists_each_code_once_however_many_channels_carry_it() -> None:
    sends = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C2"],
            "campaign": ["birthday", "birthday", "welcome"],
            "step": [1, 1, 1],
            "occurrence": ["2026-04-20", "2026-04-20", "2026-04-01"],
            "channel": ["email", "sms", "email"],
        }
    )

    rows = registry(sends, CATALOG, KEY)

    # the welcome's first step carries no coupon; the birthday's email and SMS share one
    assert list(rows["campaign"]) == ["birthday"]
    assert rows.iloc[0].to_dict() == {
        "code": coupon_code(KEY, "birthday", CATALOG["birthday"].offer, "C1", "2026-04-20"),  # type: ignore[arg-type]
        "customer_id": "C1",
        "campaign": "birthday",
        "step": 1,
        "occurrence": "2026-04-20",
        "percent_off": 20,
        "valid_from": "2026-04-13",
        "valid_until": "2026-04-23",
    }


def test_redemptions_ignore_case_blanks_and_orders_without_a_code() -> None:
    orders = pd.DataFrame({"coupon_code": [" bday-abc ", None, "", "BACK-XYZ"]})

    assert redeemed_codes(orders) == {"BDAY-ABC", "BACK-XYZ"}
    assert redeemed_codes(pd.DataFrame({"order_id": ["O1"]})) == frozenset()
