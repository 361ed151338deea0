"""The demo shop generator: contract shape, integrity, and believable behaviour."""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow.parquet as pq
import pytest
from email_validator import EmailNotValidError, validate_email

from tasks.data.contract import SPECS, Kind
from tasks.demo.synth import DEFAULT_END, EXTRA_COLUMNS, generate_shop, write_shop
from tasks.kernel.enums import OrderStatus, Table

CUSTOMERS = 3_000
DAYS = 365
SEED = 11
END_OF_PERIOD = pd.Timestamp(DEFAULT_END + timedelta(days=1), tz="UTC")
PET = {"cat": ["cat_food", "cat_toys"], "dog": ["dog_food", "dog_toys"]}


@pytest.fixture(scope="module")
def shop() -> dict[Table, pd.DataFrame]:
    return generate_shop(CUSTOMERS, DAYS, SEED)


@pytest.fixture(scope="module")
def lines(shop: dict[Table, pd.DataFrame]) -> pd.DataFrame:
    """Order lines with the order's customer and time and the product's category."""
    orders = shop[Table.ORDERS][["order_id", "customer_id", "created_at", "status"]]
    products = shop[Table.PRODUCTS][["product_id", "category"]]
    return shop[Table.ORDER_ITEMS].merge(orders, on="order_id").merge(products, on="product_id")


# --- shape and determinism -------------------------------------------------------


def test_same_seed_same_shop_and_other_seed_other_shop(shop: dict[Table, pd.DataFrame]) -> None:
    again = generate_shop(CUSTOMERS, DAYS, SEED)
    for table in Table:
        pd.testing.assert_frame_equal(shop[table], again[table])
    other = generate_shop(CUSTOMERS, DAYS, SEED + 1)
    assert not shop[Table.CUSTOMERS]["email"].equals(other[Table.CUSTOMERS]["email"])
    assert len(shop[Table.ORDERS]) != len(other[Table.ORDERS])


def test_every_table_has_exactly_the_contract_columns(shop: dict[Table, pd.DataFrame]) -> None:
    assert list(shop) == list(Table)
    for table, frame in shop.items():
        expected = [c.name for c in SPECS[table].columns] + list(EXTRA_COLUMNS.get(table, ()))
        assert list(frame.columns) == expected, table
    assert EXTRA_COLUMNS == {Table.ORDERS: ("promised_delivery_at",)}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_written_files_are_byte_identical_for_the_same_seed(tmp_path: Path, fmt: str) -> None:
    first = write_shop(generate_shop(300, 60, 5), tmp_path / "a", fmt)  # type: ignore[arg-type]
    second = write_shop(generate_shop(300, 60, 5), tmp_path / "b", fmt)  # type: ignore[arg-type]
    assert [p.name for p in first.values()] == [f"{t.value}.{fmt}" for t in Table]
    for table, path in first.items():
        assert path.read_bytes() == second[table].read_bytes(), table


def test_csv_uses_the_documented_text_formats(shop: dict[Table, pd.DataFrame], tmp_path: Path) -> None:
    paths = write_shop(shop, tmp_path)
    customers = pd.read_csv(paths[Table.CUSTOMERS], dtype=str, keep_default_na=False)
    orders = pd.read_csv(paths[Table.ORDERS], dtype=str, keep_default_na=False)
    events = pd.read_csv(paths[Table.EVENTS], dtype=str, keep_default_na=False)
    products = pd.read_csv(paths[Table.PRODUCTS], dtype=str, keep_default_na=False)
    iso = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
    assert orders["created_at"].str.fullmatch(iso).all()
    assert orders["promised_delivery_at"].str.fullmatch(iso).all()
    assert customers["email_opt_in_at"].str.fullmatch(f"({iso})?").all()
    assert customers["birth_date"].str.fullmatch(r"(\d{4}-\d{2}-\d{2})?").all()
    assert set(customers["email_opt_in"]) == {"true", "false"}
    assert set(products["in_stock"]) == {"true", "false"}
    assert customers["customer_id"].str.fullmatch(r"C\d{7}").all()
    assert products["product_id"].str.fullmatch(r"P\d{5}").all()
    assert orders["order_id"].str.fullmatch(r"O\d{8}").all()
    assert set(events.loc[events["type"] != "review", "rating"]) == {""}
    assert len(customers) == CUSTOMERS
    first_line = paths[Table.ORDERS].read_text().splitlines()[0]
    assert first_line == "order_id,customer_id,created_at,status,total,currency,promised_delivery_at"


def test_parquet_keeps_types(shop: dict[Table, pd.DataFrame], tmp_path: Path) -> None:
    paths = write_shop(shop, tmp_path, "parquet")
    schema = pq.read_schema(paths[Table.CUSTOMERS])
    assert str(schema.field("created_at").type) == "timestamp[ns, tz=UTC]"
    assert str(schema.field("birth_date").type) == "date32[day]"
    assert str(schema.field("email_opt_in").type) == "bool"
    orders = pd.read_parquet(paths[Table.ORDERS])
    pd.testing.assert_series_equal(
        orders["created_at"], shop[Table.ORDERS]["created_at"], check_dtype=False, check_names=False
    )


def test_tiny_and_short_shops_work() -> None:
    tiny = generate_shop(1, 1, 0)
    assert len(tiny[Table.CUSTOMERS]) == 1
    assert len(tiny[Table.PRODUCTS]) == 200
    with pytest.raises(ValueError, match="at least 1"):
        generate_shop(0, 10, 0)


# --- integrity ---------------------------------------------------------------------


def test_nothing_happens_after_the_last_day(shop: dict[Table, pd.DataFrame]) -> None:
    for table, frame in shop.items():
        for column in SPECS[table].columns:
            if column.kind is Kind.DATETIME:
                values = frame[column.name].dropna()
                assert (values < END_OF_PERIOD).all(), (table, column.name)
    # The promise of a recent order may lie ahead; its order does not.
    orders = shop[Table.ORDERS]
    assert (orders["promised_delivery_at"] > orders["created_at"]).all()


def test_ids_are_unique_and_every_foreign_key_resolves(shop: dict[Table, pd.DataFrame]) -> None:
    for table, spec in SPECS.items():
        if spec.key:
            assert not shop[table].duplicated(list(spec.key)).any(), table
        for fk in spec.foreign_keys:
            assert shop[table][fk.column].isin(shop[fk.table][fk.ref_column]).all(), (table, fk.column)


def test_nothing_refers_to_a_customer_or_product_before_it_existed(shop: dict[Table, pd.DataFrame]) -> None:
    customers = shop[Table.CUSTOMERS].set_index("customer_id")["created_at"]
    products = shop[Table.PRODUCTS].set_index("product_id")["created_at"]
    events = shop[Table.EVENTS]
    assert (events["at"].to_numpy() >= customers.loc[events["customer_id"]].to_numpy()).all()
    assert (events["at"].to_numpy() >= products.loc[events["product_id"]].to_numpy()).all()
    orders = shop[Table.ORDERS]
    assert (orders["created_at"].to_numpy() > customers.loc[orders["customer_id"]].to_numpy()).all()


def test_order_totals_are_the_sum_of_their_lines(shop: dict[Table, pd.DataFrame]) -> None:
    items = shop[Table.ORDER_ITEMS]
    cents = (items["quantity"] * (items["unit_price"] * 100).round()).groupby(items["order_id"]).sum()
    orders = shop[Table.ORDERS].set_index("order_id")
    assert ((orders["total"] * 100).round() == cents.loc[orders.index]).all()
    assert items["quantity"].between(1, 3).all()
    assert (items["unit_price"] > 0).all()
    assert items.groupby("order_id").size().between(1, 5).all()


def test_order_status_is_its_latest_event(shop: dict[Table, pd.DataFrame]) -> None:
    events = shop[Table.ORDER_EVENTS]
    assert events.groupby("order_id")["at"].is_monotonic_increasing.all()
    latest = events.sort_values(["order_id", "at"]).groupby("order_id")["status"].last()
    orders = shop[Table.ORDERS].set_index("order_id")
    expected = latest.reindex(orders.index).fillna(OrderStatus.PLACED.value)
    assert (orders["status"] == expected).all()
    first = events.groupby("order_id")["status"].first()
    assert (first == "processing").all()


def test_products_in_stock_matches_their_last_stock_event(shop: dict[Table, pd.DataFrame]) -> None:
    stock = shop[Table.STOCK_EVENTS].sort_values(["product_id", "at"], kind="stable")
    last = stock.groupby("product_id")["in_stock"].last()
    products = shop[Table.PRODUCTS].set_index("product_id")
    assert (products["in_stock"] == last.loc[products.index]).all()
    assert 0.01 < 1 - products["in_stock"].mean() < 0.2  # some are still sold out at the end
    changes = stock.groupby("product_id").size()
    assert (changes >= 3).sum() > 0.1 * len(products)  # out of stock and back again


def test_orders_only_contain_products_in_stock_at_the_time(
    shop: dict[Table, pd.DataFrame], lines: pd.DataFrame
) -> None:
    stock = shop[Table.STOCK_EVENTS].sort_values("at")
    merged = pd.merge_asof(lines.sort_values("created_at"), stock, left_on="created_at", right_on="at", by="product_id")
    assert merged["in_stock"].all()


# --- customers and contacts ----------------------------------------------------


def test_customers_look_local(shop: dict[Table, pd.DataFrame]) -> None:
    customers = shop[Table.CUSTOMERS]
    share = customers["locale"].value_counts(normalize=True)
    assert share["ru"] == pytest.approx(0.5, abs=0.05)
    assert share["pl"] == pytest.approx(0.3, abs=0.05)
    assert share["en"] == pytest.approx(0.2, abs=0.05)
    ru = customers[customers["locale"] == "ru"]
    assert (ru["country"] == "RU").all()
    assert ru["last_name"].str.fullmatch(r"[А-ЯЁ][а-яё]+").all()
    assert {"Europe/Moscow", "Asia/Yekaterinburg", "Asia/Novosibirsk", "Asia/Vladivostok"} <= set(ru["timezone"])
    assert ru.loc[ru["gender"] == "f", "last_name"].str.endswith(("а", "ая", "о", "к")).all()
    pl = customers[customers["locale"] == "pl"]
    assert (pl["timezone"] == "Europe/Warsaw").all()
    assert not pl.loc[pl["gender"] == "f", "last_name"].str.endswith("ski").any()
    assert pl["last_name"].str.contains("[ąćęłńóśźż]").any()
    en = customers[customers["locale"] == "en"]
    assert set(en["country"]) == {"GB", "US", "IE"}
    assert customers["gender"].eq("unknown").mean() == pytest.approx(0.03, abs=0.015)


def test_birthdays_are_adults_and_include_29_february(shop: dict[Table, pd.DataFrame]) -> None:
    birth = shop[Table.CUSTOMERS]["birth_date"].dropna()
    age = (pd.Timestamp(DEFAULT_END) - birth).dt.days / 365.25
    assert age.between(18, 76).all()
    leap_day = (birth.dt.month == 2) & (birth.dt.day == 29)
    assert leap_day.sum() >= math.ceil(CUSTOMERS / 2000)


def _valid_phone(phone: str, country: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(phone, country)))
    except phonenumbers.NumberParseException:
        return False


def test_clean_phones_are_valid_for_the_customers_country(shop: dict[Table, pd.DataFrame]) -> None:
    customers = shop[Table.CUSTOMERS].dropna(subset=["phone"])
    valid = [_valid_phone(p, c) for p, c in zip(customers["phone"], customers["country"], strict=True)]
    invalid = customers.loc[~np.array(valid), "phone"]
    # The only invalid phones are the junk people type into phone fields.
    assert invalid.str.replace(r"\D", "", regex=True).str.len().lt(8).all(), invalid.head().tolist()
    assert 0 < len(invalid) / len(customers) < 0.025
    ru = customers.loc[customers["country"] == "RU", "phone"]
    assert ru.str.match(r"8 \(9\d\d\) \d{3}-\d{2}-\d{2}$").any()
    assert ru.str.match(r"\+7 9\d\d \d{3}-\d{2}-\d{2}$").any()
    assert shop[Table.CUSTOMERS]["phone"].isna().mean() == pytest.approx(0.18, abs=0.04)


def test_emails_use_reserved_domains_and_a_few_are_dirty(shop: dict[Table, pd.DataFrame]) -> None:
    emails = shop[Table.CUSTOMERS]["email"].dropna()
    bad = []
    for email in emails:
        try:
            domain = validate_email(email, check_deliverability=False).domain
        except EmailNotValidError:
            bad.append(email)
            continue
        assert re.fullmatch(r"([a-z0-9-]+\.)*example\.(com|net|org)", domain), email
    assert 0.005 < len(bad) / len(emails) < 0.03
    assert any("@@" in e for e in bad) and any("@" not in e for e in bad)
    assert emails.is_unique


def test_consents_follow_sign_up(shop: dict[Table, pd.DataFrame]) -> None:
    customers = shop[Table.CUSTOMERS]
    assert customers["email_opt_in"].mean() == pytest.approx(0.8, abs=0.05)
    assert customers["sms_opt_in"].mean() == pytest.approx(0.35, abs=0.05)
    assert customers["ads_opt_in"].mean() == pytest.approx(0.4, abs=0.05)  # the demo's ad audiences
    for channel in ("email", "sms", "ads"):
        opted = customers[f"{channel}_opt_in"]
        at = customers[f"{channel}_opt_in_at"]
        assert at[opted].notna().all() and at[~opted].isna().all()
        assert (at[opted] > customers.loc[opted, "created_at"]).all()
    assert not (customers["sms_opt_in"] & customers["phone"].isna()).any()
    assert not (customers["ads_opt_in"] & customers["phone"].isna() & customers["email"].isna()).any()


# --- purchasing behaviour ------------------------------------------------------


def test_repeat_purchasing_is_heavy_tailed(shop: dict[Table, pd.DataFrame]) -> None:
    per_buyer = shop[Table.ORDERS]["customer_id"].value_counts()
    assert 0.6 < len(per_buyer) / CUSTOMERS < 0.9  # some customers never order
    assert (per_buyer == 1).mean() > 0.3  # many one-time buyers
    top = per_buyer.head(len(per_buyer) // 10).sum() / per_buyer.sum()
    assert top > 0.3  # the best tenth place a large share of the orders
    assert per_buyer.max() >= 15


def test_pet_owners_buy_for_their_pet(lines: pd.DataFrame) -> None:
    counts = pd.DataFrame(
        {pet: lines["category"].isin(cats).groupby(lines["customer_id"]).sum() for pet, cats in PET.items()}
    )
    for pet, other in (("cat", "dog"), ("dog", "cat")):
        keen = counts[counts[pet] >= 3]
        assert len(keen) > 50
        assert (keen[other] == 0).mean() > 0.6, pet  # cat people buy almost nothing for dogs
    # Pet categories are a large share of what pet buyers buy.
    pet_lines = lines["category"].isin(PET["cat"] + PET["dog"])
    assert 0.3 < pet_lines.mean() < 0.7


def test_pet_food_is_bought_again_at_a_regular_interval(lines: pd.DataFrame) -> None:
    food = lines[lines["category"].str.endswith("_food")].sort_values("created_at")
    gaps = food.groupby(["customer_id", "product_id"])["created_at"].diff().dt.total_seconds() / 86_400
    stats = gaps.dropna().groupby([food["customer_id"], food["product_id"]]).agg(["count", "mean", "std"])
    regular = stats[stats["count"] >= 3]
    assert len(regular) > 50
    assert (regular["std"] / regular["mean"]).median() < 0.25
    assert regular["mean"].median() == pytest.approx(30, abs=8)


def test_weekday_seasonality_is_visible(shop: dict[Table, pd.DataFrame]) -> None:
    orders = shop[Table.ORDERS]["created_at"].dt.dayofweek.value_counts()
    assert orders.max() / orders.min() > 1.25
    assert orders.idxmin() == 5  # Saturday is quiet
    events = shop[Table.EVENTS]
    views = events.loc[events["type"] == "view", "at"].dt.dayofweek.value_counts()
    assert views.idxmin() == 5 and views.idxmax() in (0, 6)


def test_black_friday_and_holidays_bring_more_shopping() -> None:
    shop = generate_shop(CUSTOMERS, DAYS, SEED, end=date(2026, 9, 30))

    def per_day(times: pd.Series) -> pd.Series:
        daily: pd.Series = times.dt.tz_convert(None).dt.normalize().value_counts().sort_index()
        return daily

    def lift(daily: pd.Series, peak: tuple[str, str], before: tuple[str, str], after: tuple[str, str]) -> float:
        """Daily mean in the peak over the mean of the windows around it (cancels growth)."""
        mean = [float(daily.loc[pd.Timestamp(a) : pd.Timestamp(b)].mean()) for a, b in (peak, before, after)]
        return mean[0] / ((mean[1] + mean[2]) / 2)

    orders = per_day(shop[Table.ORDERS]["created_at"])
    assert lift(orders, ("2025-11-24", "2025-12-01"), ("2025-11-10", "2025-11-23"), ("2025-12-02", "2025-12-15")) > 1.2
    # Russian customers shop before 23 February and 8 March.
    events = shop[Table.EVENTS]
    locale = shop[Table.CUSTOMERS].set_index("customer_id")["locale"]
    ru_views = per_day(events.loc[(events["type"] == "view") & (events["customer_id"].map(locale) == "ru"), "at"])
    assert (
        lift(ru_views, ("2026-03-01", "2026-03-07"), ("2026-02-23", "2026-02-28"), ("2026-03-09", "2026-03-22")) > 1.2
    )
    assert (
        lift(ru_views, ("2026-02-16", "2026-02-22"), ("2026-02-02", "2026-02-15"), ("2026-02-23", "2026-02-28")) > 1.1
    )


def test_fulfilment_is_realistic(shop: dict[Table, pd.DataFrame]) -> None:
    orders = shop[Table.ORDERS].set_index("order_id")
    events = shop[Table.ORDER_EVENTS]
    delivered = events[events["status"] == "delivered"].set_index("order_id")["at"]
    late = delivered > orders.loc[delivered.index, "promised_delivery_at"]
    assert late.mean() == pytest.approx(0.08, abs=0.03)
    cancelled = events.loc[events["status"] == "cancelled", "order_id"].nunique() / len(orders)
    assert cancelled == pytest.approx(0.03, abs=0.015)
    returned = (events["status"] == "returned").sum() / len(delivered)
    assert returned == pytest.approx(0.04, abs=0.02)
    # Recent orders are still on their way.
    recent = orders[orders["created_at"] > END_OF_PERIOD - pd.Timedelta(days=2)]
    assert recent["status"].isin(["processing", "paid", "handed_to_carrier", "shipped", "placed"]).any()
    shipped = events[events["status"] == "shipped"].set_index("order_id")["at"]
    both = delivered.index.intersection(shipped.index)
    transit = (delivered.loc[both] - shipped.loc[both]).dt.total_seconds() / 3600
    assert transit.between(1, 24 * 30).all() and transit.median() > 12


def test_behaviour_funnel_and_reviews(shop: dict[Table, pd.DataFrame], lines: pd.DataFrame) -> None:
    events = shop[Table.EVENTS]
    kinds = events["type"].value_counts()
    assert kinds["view"] > kinds["cart_add"] > len(shop[Table.ORDERS]) > kinds["cart_remove"] > 0
    assert kinds["wishlist_add"] > 0
    buyers = set(shop[Table.ORDERS]["customer_id"])
    assert (~events["customer_id"].isin(buyers)).any()  # browsing without buying

    reviews = events[events["type"] == "review"]
    others = events[events["type"] != "review"]
    assert reviews["rating"].between(1, 5).all() and reviews["text"].str.len().gt(0).all()
    assert others["rating"].isna().all() and others["text"].isna().all()
    delivered = shop[Table.ORDER_EVENTS]["status"].eq("delivered").sum()
    assert len(reviews) / delivered == pytest.approx(0.15, abs=0.05)
    assert reviews["rating"].isin([4, 5]).mean() > 0.6
    # Returns leave unhappy reviews.
    returned = lines.loc[lines["status"] == "returned", ["customer_id", "product_id"]].drop_duplicates()
    after_return = reviews.merge(returned, on=["customer_id", "product_id"])
    assert after_return["rating"].mean() < reviews["rating"].mean() - 0.8
    # Reviews are written in the customer's language.
    locale = shop[Table.CUSTOMERS].set_index("customer_id")["locale"]
    ru = reviews[reviews["customer_id"].map(locale) == "ru"]
    assert ru["text"].str.contains("[а-яё]").all()


def test_catalog_is_believable(shop: dict[Table, pd.DataFrame]) -> None:
    products = shop[Table.PRODUCTS]
    assert len(products) == 200
    assert {"cat_food", "cat_toys", "dog_food", "dog_toys", "home", "books"} <= set(products["category"])
    assert (products["currency"] == "EUR").all() and (products["price"] > 0).all()
    assert (products["url"] == "https://shop.example.com/p/" + products["product_id"]).all()
    assert products["name"].is_unique
    medians = products.groupby("category")["price"].median()
    assert medians["electronics"] > medians["books"]
    new = products["created_at"] > END_OF_PERIOD - pd.Timedelta(days=21)
    assert 0 < new.sum() < 0.2 * len(products)  # new arrivals
    assert products["created_at"].is_monotonic_increasing


def test_points_are_spent_within_what_was_earned_given_back_when_an_order_is_undone_and_credited_after_a_late_one(
    shop: dict[Table, pd.DataFrame],
) -> None:
    from tasks.plan.points import PointsRules, balance, points_ledger, points_taken

    moves = shop[Table.POINT_MOVEMENTS].merge(
        shop[Table.ORDERS][["order_id", "customer_id", "created_at", "status"]], on=["order_id", "customer_id"]
    )
    spent = moves.loc[moves["kind"] == "spent"]
    assert (spent["points"] < 0).all()
    assert (spent["at"] == spent["created_at"]).all()  # at checkout
    assert 0.1 < len(spent) / len(shop[Table.ORDERS]) < 0.4
    back = moves.loc[(moves["kind"] == "adjusted") & moves["status"].isin(["cancelled", "returned"])]
    undone = spent.loc[spent["status"].isin(["cancelled", "returned"])]
    assert sorted(back["points"]) == sorted(-undone["points"])
    goodwill = moves.loc[(moves["kind"] == "adjusted") & ~moves["status"].isin(["cancelled", "returned"])]
    assert len(goodwill) > 0 and (goodwill["points"] == 50).all()
    assert (moves["at"] >= moves["created_at"]).all()
    # at the engine's default rule nobody spends more than they earned: the balance net of spending is lower,
    # and held by the same customers
    customers, orders = shop[Table.CUSTOMERS], shop[Table.ORDERS]
    lots = points_ledger(orders, customers, PointsRules(), shop[Table.POINT_MOVEMENTS])
    net = balance(lots, DEFAULT_END, points_taken(shop[Table.POINT_MOVEMENTS], customers))
    gross = balance(points_ledger(orders, customers, PointsRules()), DEFAULT_END)
    assert net.sum() < gross.sum()
    assert set(net.index) <= set(gross.index)
