"""The data contract: every row accounted for, bad rows quarantined with a reason, point-in-time."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.data.contract import ContractError
from tasks.data.snapshot import load_snapshot, summarise, write_snapshot
from tasks.data.sources import check_source, iter_raw, load_raw
from tasks.data.validation import validate_snapshot
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tests.shops import add_rows, tiny_shop, write_shop

AS_OF = date(2024, 6, 1)

BASE = {
    "email": "x@example.com",
    "gender": "m",
    "locale": "en",
    "timezone": "UTC",
    "country": "GB",
    "created_at": "2023-01-01T00:00:00Z",
    "email_opt_in": "true",
    "sms_opt_in": "false",
}


def _validate(tmp_path: Path, frames: dict[Table, pd.DataFrame], as_of: date = AS_OF):  # type: ignore[no-untyped-def]
    return validate_snapshot(load_raw(str(write_shop(frames, tmp_path / "shop"))), as_of)


def test_clean_shop_has_no_quarantine(tmp_path: Path) -> None:
    snapshot = _validate(tmp_path, tiny_shop())

    assert snapshot.quarantine.empty
    assert len(snapshot.frames[Table.CUSTOMERS]) == 3


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ({"customer_id": "C9", "created_at": "yesterday"}, "created_at", "unparseable_date"),
        ({"customer_id": "C1"}, "customer_id", "duplicate_id"),
        ({"customer_id": ""}, "customer_id", "missing_value"),
        ({"customer_id": "C\x009"}, "customer_id", "control_characters"),
    ],
)
def test_bad_customer_row_is_quarantined_with_its_reason(
    tmp_path: Path, row: dict[str, str], column: str, reason: str
) -> None:
    frames = add_rows(tiny_shop(), Table.CUSTOMERS, [{**BASE, **row}])

    snapshot = _validate(tmp_path, frames)

    q = snapshot.quarantine
    assert q.to_dict("records") == [{"table": "customers", "row": 4, "column": column, "reason": reason}]
    assert len(snapshot.frames[Table.CUSTOMERS]) == 3


def test_negative_quantity_and_dangling_keys_are_quarantined(tmp_path: Path) -> None:
    frames = add_rows(
        tiny_shop(),
        Table.ORDER_ITEMS,
        [
            {"order_id": "O1", "product_id": "P1", "quantity": "-2", "unit_price": "1"},
            {"order_id": "O404", "product_id": "P1", "quantity": "1", "unit_price": "1"},
            {"order_id": "O1", "product_id": "P404", "quantity": "1", "unit_price": "1"},
            {"order_id": "O1", "product_id": "P1", "quantity": "two", "unit_price": "1"},
        ],
    )
    frames = add_rows(
        frames,
        Table.ORDERS,
        [
            {
                "order_id": "O3",
                "customer_id": "C404",
                "created_at": "2024-01-01",
                "status": "paid",
                "total": "1",
                "currency": "EUR",
            },
        ],
    )

    q = _validate(tmp_path, frames).quarantine

    got = {(r["table"], r["row"], r["column"], r["reason"]) for r in q.to_dict("records")}
    assert got == {
        ("orders", 3, "customer_id", "dangling_foreign_key"),
        ("order_items", 3, "quantity", "non_positive_quantity"),
        ("order_items", 4, "order_id", "dangling_foreign_key"),
        ("order_items", 5, "product_id", "dangling_foreign_key"),
        ("order_items", 6, "quantity", "unparseable_number"),
    }


def test_every_input_row_is_accounted_for(tmp_path: Path) -> None:
    frames = add_rows(
        tiny_shop(),
        Table.CUSTOMERS,
        [
            {**BASE, "customer_id": "C7", "email": "nope"},
            {**BASE, "customer_id": "C8", "created_at": "2030-01-01T00:00:00Z"},
            {**BASE, "customer_id": "C9"},
        ],
    )
    frames = add_rows(
        frames,
        Table.EVENTS,
        [
            {"customer_id": "C1", "product_id": "P1", "type": "review", "at": "2024-02-05", "rating": "9"},
            {"customer_id": "C1", "product_id": "P1", "type": "teleport", "at": "2024-02-05"},
            {"customer_id": "C1", "product_id": "P1", "type": "view", "at": "2031-02-05"},
        ],
    )

    snapshot = _validate(tmp_path, frames)

    for table, counts in snapshot.counts.items():
        assert counts.clean + counts.quarantined + counts.future == counts.input, table
        assert len(snapshot.frames[table]) == counts.clean
    assert snapshot.counts[Table.CUSTOMERS].future == 1
    assert snapshot.counts[Table.EVENTS].quarantined == 1  # the teleport; the review's rating 9 is emptied
    assert len(snapshot.quarantine) == sum(c.quarantined for c in snapshot.counts.values())


def test_the_run_writes_each_table_as_it_is_validated_with_the_same_rows_and_quarantine(tmp_path: Path) -> None:
    frames = add_rows(
        tiny_shop(),
        Table.CUSTOMERS,
        [{**BASE, "customer_id": "C7", "email": "nope"}, {**BASE, "customer_id": "C8", "created_at": "never"}],
    )
    frames = add_rows(
        frames, Table.ORDERS, [{**frames[Table.ORDERS].iloc[0].to_dict(), "order_id": "O9", "customer_id": "C404"}]
    )
    shop = str(write_shop(frames, tmp_path / "shop"))
    whole = validate_snapshot(load_raw(shop), AS_OF)
    paths = RunPaths.for_day(tmp_path / "out", AS_OF)

    summary = load_snapshot.fn(shop, AS_OF, paths, Settings(output_dir=tmp_path / "out"))

    assert summary == summarise(whole)
    assert summary.quarantined == 2 and summary.nulled == 1
    at_once = RunPaths.for_day(tmp_path / "at_once", AS_OF)
    write_snapshot(whole, at_once)
    for table in whole.frames:
        written, expected = (pd.read_parquet(p.table(table)) for p in (paths, at_once))
        pd.testing.assert_frame_equal(written, expected, obj=table.value)
    assert paths.quarantine.read_text() == at_once.quarantine.read_text()
    assert paths.nulled.read_text() == at_once.nulled.read_text()


def test_tables_checked_side_by_side_give_the_snapshot_checked_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.data import validation
    from tasks.demo.synth import generate_shop

    frames = {t: f.astype(str) for t, f in generate_shop(customers=300, days=120, seed=3, end=AS_OF).items()}
    orders, events = frames[Table.ORDERS], frames[Table.EVENTS]
    # a bad email (emptied), a bad customer, an order of nobody, an unknown event
    frames[Table.CUSTOMERS].loc[0, "email"] = "nope"
    frames[Table.CUSTOMERS].loc[1, "created_at"] = "never"
    frames[Table.ORDERS].loc[orders.index[3], "customer_id"] = "C404"
    frames[Table.EVENTS].loc[events.index[5], "type"] = "teleport"
    frames[Table.EVENTS].loc[events.index[-7], "product_id"] = "P404"
    frames[Table.EVENTS].loc[events.index[-9], "rating"] = "11"  # an optional cell emptied, late in the table
    shop = str(write_shop(frames, tmp_path / "shop"))
    with (tmp_path / "shop" / "events.csv").open("a") as file:
        file.write("C1,P1\n")  # a row the reader sets aside: its number is the last

    one = validate_snapshot(load_raw(shop), AS_OF, threads=1)
    two = validate_snapshot(load_raw(shop), AS_OF, threads=2)
    # each table checked as soon as it and its parents are read, the next one read meanwhile (the daily run's way)
    read_along = validate_snapshot(iter_raw(shop), AS_OF, threads=2)
    # and the tables without a key (events, order events) checked in parts of 700 rows, side by side
    monkeypatch.setattr(validation, "PART_ROWS", 700)
    in_parts = validate_snapshot(iter_raw(shop), AS_OF, threads=2)

    assert set(one.quarantine["reason"]) == {
        "unparseable_date",
        "dangling_foreign_key",
        "unknown_enum",
        "malformed_row",
    }
    assert len(one.nulled) > 0 and "events" in set(one.nulled["table"])
    assert len(frames[Table.EVENTS]) > 3 * 700
    for other in (two, read_along, in_parts):
        assert list(other.frames) == list(one.frames) and other.counts == one.counts
        for table, frame in one.frames.items():
            pd.testing.assert_frame_equal(other.frames[table], frame, obj=table.value)
        pd.testing.assert_frame_equal(other.quarantine, one.quarantine)
        pd.testing.assert_frame_equal(other.nulled, one.nulled)


def test_a_table_that_cannot_be_read_while_others_are_checked_fails_the_load_naming_its_file(tmp_path: Path) -> None:
    folder = write_shop(tiny_shop(), tmp_path / "shop")
    (folder / "events.csv").write_text("event_id,when\nE1,2024-01-01\n")  # not the events' columns
    validated: list[Table] = []

    with pytest.raises(ContractError, match=r"events.csv: .*column"):
        validate_snapshot(iter_raw(str(folder)), AS_OF, keep=lambda table, _: validated.append(table))

    assert Table.EVENTS not in validated


def test_a_load_from_a_wrong_place_leaves_the_days_earlier_run_as_it_was(tmp_path: Path) -> None:
    folder = write_shop(tiny_shop(), tmp_path / "shop")
    settings = Settings(output_dir=tmp_path / "out")
    paths = RunPaths.for_day(tmp_path / "out", AS_OF)
    load_snapshot.fn(str(folder), AS_OF, paths, settings)
    before = sorted(p.relative_to(paths.root) for p in paths.root.rglob("*"))
    gone = write_shop(tiny_shop(), tmp_path / "gone")
    (gone / "orders.csv").unlink()

    for wrong in (tmp_path / "nowhere", gone):
        with pytest.raises(ContractError):
            load_snapshot.fn(str(wrong), AS_OF, paths, settings)

    assert sorted(p.relative_to(paths.root) for p in paths.root.rglob("*")) == before


def test_phones_are_normalised_to_e164_in_the_customers_country(tmp_path: Path) -> None:
    customers = _validate(tmp_path, tiny_shop()).frames[Table.CUSTOMERS].set_index("customer_id")

    assert customers.loc["C1", "phone"] == "+79123456789"  # "8 (912) 345-67-89" in RU
    assert customers.loc["C2", "phone"] == "+48512345678"  # "512 345 678" in PL
    assert pd.isna(customers.loc["C3", "phone"])


def test_records_after_as_of_are_invisible(tmp_path: Path) -> None:
    early = _validate(tmp_path, tiny_shop(), as_of=date(2024, 3, 1))

    orders = early.frames[Table.ORDERS]
    assert list(orders["order_id"]) == ["O1"]  # O2 was placed 2024-05-20
    assert early.counts[Table.ORDER_ITEMS].future == 1  # its items vanish with it
    assert len(early.frames[Table.STOCK_EVENTS]) == 1  # 2024-03-01T00:00 is inside the as_of day
    assert early.quarantine.empty
    day_before = _validate(tmp_path, tiny_shop(), as_of=date(2024, 2, 29))
    assert day_before.frames[Table.STOCK_EVENTS].empty


def test_the_whole_as_of_day_is_visible(tmp_path: Path) -> None:
    snapshot = _validate(tmp_path, tiny_shop(), as_of=date(2024, 5, 20))

    assert "O2" in set(snapshot.frames[Table.ORDERS]["order_id"])


def test_unknown_extra_columns_are_kept(tmp_path: Path) -> None:
    frames = tiny_shop()
    frames[Table.CUSTOMERS] = frames[Table.CUSTOMERS].assign(loyalty_tier=["gold", "", "silver"])

    customers = _validate(tmp_path, frames).frames[Table.CUSTOMERS]

    assert list(customers["loyalty_tier"]) == ["gold", "", "silver"]


def test_parquet_and_csv_give_the_same_snapshot(tmp_path: Path) -> None:
    from_csv = validate_snapshot(load_raw(str(write_shop(tiny_shop(), tmp_path / "csv"))), AS_OF)
    from_parquet = validate_snapshot(load_raw(str(write_shop(tiny_shop(), tmp_path / "pq", fmt="parquet"))), AS_OF)

    assert set(from_csv.frames) == set(from_parquet.frames)
    for table in from_csv.frames:
        pd.testing.assert_frame_equal(from_csv.frames[table], from_parquet.frames[table], check_dtype=False)


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    frames = tiny_shop()
    frames[Table.ORDERS] = frames[Table.ORDERS].drop(columns=["total"])
    folder = write_shop(frames, tmp_path / "shop")

    with pytest.raises(ContractError) as err:
        check_source(str(folder))

    assert str(err.value) == f"{folder / 'orders.csv'}: missing required column 'total'"
    with pytest.raises(ContractError, match=r"orders.csv: missing required column 'total'"):
        load_raw(str(folder))


def test_missing_file_is_named(tmp_path: Path) -> None:
    folder = write_shop(tiny_shop(), tmp_path / "shop")
    (folder / "stock_events.csv").unlink()

    with pytest.raises(ContractError, match=r"stock_events.csv: file not found"):
        load_raw(str(folder))


MOVEMENT_COLUMNS = ["movement_id", "customer_id", "at", "kind", "points", "order_id"]


def test_a_shop_without_point_movements_loads_without_the_table_not_with_an_empty_one(tmp_path: Path) -> None:
    folder = write_shop(tiny_shop(), tmp_path / "shop")

    check_source(str(folder))
    snapshot = validate_snapshot(load_raw(str(folder)), AS_OF)

    assert Table.POINT_MOVEMENTS not in snapshot.frames
    assert Table.POINT_MOVEMENTS not in snapshot.counts
    assert snapshot.quarantine.empty


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_bad_point_movements_are_quarantined_with_their_reason_and_later_ones_are_invisible(
    tmp_path: Path, fmt: str
) -> None:
    rows = [
        ["M1", "C1", "2024-02-10T12:00:00Z", "spent", "-20", "O1"],  # good: spent at checkout of O1
        ["M2", "C2", "2024-05-21T12:00:00Z", "adjusted", "15", ""],  # good: a credit without an order
        ["M3", "C1", "2024-03-01T12:00:00Z", "spent", "20", ""],  # spent points are never positive
        ["M4", "C1", "2024-03-01T12:00:00Z", "earned", "20", ""],  # earning is the shop's rule on orders
        ["M5", "C1", "2024-03-01T12:00:00Z", "adjusted", "1.5", ""],
        ["M6", "C404", "2024-03-01T12:00:00Z", "adjusted", "-5", ""],
        ["M7", "C1", "2024-03-01T12:00:00Z", "spent", "-5", "O404"],
        ["M1", "C1", "2024-03-01T12:00:00Z", "spent", "-5", ""],
        ["M8", "C1", "2024-06-02T00:00:00Z", "spent", "-5", ""],  # after as_of: invisible, not bad
    ]
    frames = tiny_shop() | {Table.POINT_MOVEMENTS: pd.DataFrame(rows, columns=MOVEMENT_COLUMNS)}

    snapshot = validate_snapshot(load_raw(str(write_shop(frames, tmp_path / "shop", fmt=fmt))), AS_OF)

    clean = snapshot.frames[Table.POINT_MOVEMENTS]
    assert clean["movement_id"].tolist() == ["M1", "M2"]
    assert clean["points"].tolist() == [-20, 15]
    assert clean["order_id"].isna().tolist() == [False, True]
    quarantined = snapshot.quarantine.loc[snapshot.quarantine["table"] == "point_movements"]
    assert quarantined[["row", "column", "reason"]].to_records(index=False).tolist() == [
        (3, "points", "out_of_range"),
        (4, "kind", "unknown_enum"),
        (5, "points", "unparseable_number"),
        (6, "customer_id", "dangling_foreign_key"),
        (7, "order_id", "dangling_foreign_key"),
        (8, "movement_id", "duplicate_id"),
    ]
    assert snapshot.counts[Table.POINT_MOVEMENTS].future == 1


def test_orders_of_a_quarantined_customer_keep_their_history(tmp_path: Path) -> None:
    frames = tiny_shop()
    frames[Table.CUSTOMERS].loc[0, "created_at"] = "01.01.2023"  # C1's sign-up time is not a date

    snapshot = _validate(tmp_path, frames)

    assert snapshot.quarantine.to_dict("records") == [
        {"table": "customers", "row": 1, "column": "created_at", "reason": "unparseable_date"}
    ]
    assert "C1" not in set(snapshot.frames[Table.CUSTOMERS]["customer_id"])  # never messaged
    assert "O1" in set(snapshot.frames[Table.ORDERS]["order_id"])  # but the purchase still counts


def test_missing_values_in_parquet_are_empty_not_the_text_none(tmp_path: Path) -> None:
    frames = tiny_shop()
    customers = frames[Table.CUSTOMERS].astype(object)
    customers.loc[:, "email"] = [f"c{i}@example.com" for i in range(3)]
    customers = pd.concat([customers] * 30, ignore_index=True)  # more than any sample of leading rows
    customers["customer_id"] = [f"C{i}" for i in range(len(customers))]
    customers.loc[len(customers) - 1, "email"] = None
    frames[Table.CUSTOMERS] = customers
    folder = write_shop(frames, tmp_path / "pq", fmt="parquet")

    snapshot = validate_snapshot(load_raw(str(folder)), AS_OF)

    assert snapshot.quarantine.empty
    assert snapshot.frames[Table.CUSTOMERS]["email"].isna().sum() == 1


def test_many_contacts_are_checked_on_every_core_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.data import validation

    emails = pd.Series([f"user{i}@example.com" for i in range(300)] + ["bad@@example.com", "", "user1@example.com"])
    serial = validation._map_unique(validation._normalise_email, emails)
    monkeypatch.setattr(validation, "PARALLEL_MIN_VALUES", 10)

    parallel = validation._map_unique(validation._normalise_email, emails)

    pd.testing.assert_series_equal(serial, parallel)
    assert parallel.isna().sum() == 2


def test_times_read_by_the_fast_path_are_the_instants_pandas_reads_and_impossible_days_stay_unparseable() -> None:
    from tasks.data.validation import utc_times

    cells = [
        "2025-11-21T00:02:36Z",  # the usual form: Arrow reads it
        "2024-02-29T10:00:00Z",  # a leap day
        "2025-02-29T10:00:00Z",  # no such day: strptime would roll it over to 1 March
        "2025-02-30T10:00:00Z",
        "2025-04-31T23:59:59Z",
        "2025-11-21T24:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-11-21T10:00:60Z",
        "2025-11-21T10:00:00+03:00",  # other forms go through pandas
        "2025-11-21 10:00:00",
        "2025-11-21T10:00:00.250Z",
        "2025-11-21",
        "1969-12-31T23:59:59Z",
        "2262-04-12T00:00:00Z",  # past what nanoseconds hold
        "yesterday",
        "",
    ]
    text = pd.Series(cells, dtype=pd.StringDtype("pyarrow"))

    expected = pd.to_datetime(text.where(text != ""), utc=True, format="ISO8601", errors="coerce")

    pd.testing.assert_series_equal(utc_times(text), expected)
    assert utc_times(text)[2:8].isna().all()  # no impossible day or time is read as a neighbouring one


@pytest.mark.parametrize(
    ("row", "column", "reason", "kept"),
    [
        ({"email": "bad@@example.com"}, "email", "invalid_email", None),
        ({"email": "иван@магазин.рф"}, "email", "invalid_email", None),  # no ASCII form: SES cannot send to it
        ({"phone": "123"}, "phone", "invalid_phone", None),
        ({"birth_date": "1990-13-45"}, "birth_date", "unparseable_date", None),
        ({"gender": "x"}, "gender", "unknown_enum", "unknown"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown_timezone", "UTC"),
        ({"email_opt_in": "maybe"}, "email_opt_in", "unparseable_bool", False),  # no consent unless it is clear
        ({"first_name": "Iv\x00an"}, "first_name", "control_characters", None),
        ({"last_name": "Petrov\u2028Bcc: all"}, "last_name", "control_characters", None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_optional_cell_is_emptied_with_a_warning_and_the_customer_kept(
    tmp_path: Path, row: dict[str, str], column: str, reason: str, kept: object
) -> None:
    frames = add_rows(tiny_shop(), Table.CUSTOMERS, [{**BASE, "customer_id": "C9", "email": "ivan@example.com", **row}])

    snapshot = _validate(tmp_path, frames)

    assert snapshot.quarantine.empty
    customer = snapshot.frames[Table.CUSTOMERS].set_index("customer_id").loc["C9"]
    assert (pd.isna(customer[column]) and kept is None) or customer[column] == kept
    assert snapshot.nulled.to_dict("records") == [{"table": "customers", "row": 4, "column": column, "reason": reason}]
    assert snapshot.nulled_by_column() == {"customers": {column: {reason: 1}}}


def test_the_optional_ads_consent_is_read_and_a_bad_value_costs_the_cell_not_the_customer(tmp_path: Path) -> None:
    # given: a shop that asks for advertising consent; one answer unreadable
    frames = tiny_shop()
    frames[Table.CUSTOMERS] = frames[Table.CUSTOMERS].assign(ads_opt_in="")
    rows = [{**BASE, "customer_id": "C8", "ads_opt_in": "yes"}, {**BASE, "customer_id": "C9", "ads_opt_in": "maybe"}]

    snapshot = _validate(tmp_path, add_rows(frames, Table.CUSTOMERS, rows))

    # then: nobody quarantined; the unreadable answer is no, and counted as an emptied cell
    assert snapshot.quarantine.empty
    ads = snapshot.frames[Table.CUSTOMERS].set_index("customer_id")["ads_opt_in"]
    assert ads.to_dict() == {"C1": False, "C2": False, "C3": False, "C8": True, "C9": False}
    assert snapshot.nulled_by_column() == {"customers": {"ads_opt_in": {"unparseable_bool": 1}}}


def test_a_shop_without_the_ads_consent_column_loads_with_it_unknown(tmp_path: Path) -> None:
    snapshot = _validate(tmp_path, tiny_shop())

    assert snapshot.quarantine.empty
    assert snapshot.frames[Table.CUSTOMERS]["ads_opt_in"].isna().all()  # unknown, which the audiences read as no


def test_a_customer_with_a_good_email_and_a_bad_phone_keeps_the_email(tmp_path: Path) -> None:
    frames = add_rows(
        tiny_shop(), Table.CUSTOMERS, [{**BASE, "customer_id": "C9", "email": "ivan@example.com", "phone": "123"}]
    )

    customer = _validate(tmp_path, frames).frames[Table.CUSTOMERS].set_index("customer_id").loc["C9"]

    assert customer["email"] == "ivan@example.com"
    assert pd.isna(customer["phone"])


def test_an_international_domain_is_kept_in_its_ascii_form(tmp_path: Path) -> None:
    frames = add_rows(tiny_shop(), Table.CUSTOMERS, [{**BASE, "customer_id": "C9", "email": "Ivan@Магазин.РФ"}])

    customers = _validate(tmp_path, frames).frames[Table.CUSTOMERS].set_index("customer_id")

    assert customers.loc["C9", "email"] == "Ivan@xn--80aairftm.xn--p1ai"  # sent and hashed in one form


def test_line_breaks_and_tabs_in_a_name_become_one_space(tmp_path: Path) -> None:
    frames = add_rows(
        tiny_shop(), Table.CUSTOMERS, [{**BASE, "customer_id": "C9", "first_name": "Ivan\r\nBcc: all@example.com\t x"}]
    )

    snapshot = _validate(tmp_path, frames)

    assert snapshot.frames[Table.CUSTOMERS].set_index("customer_id").loc["C9", "first_name"] == (
        "Ivan Bcc: all@example.com x"
    )
    assert snapshot.nulled.empty


def test_a_product_name_with_a_control_character_is_quarantined(tmp_path: Path) -> None:
    frames = add_rows(
        tiny_shop(),
        Table.PRODUCTS,
        [{"product_id": "P9", "name": "Cat\x1bfood", "price": "1", "currency": "EUR", "created_at": "2023-01-01"}],
    )

    snapshot = _validate(tmp_path, frames)

    assert snapshot.quarantine.to_dict("records") == [
        {"table": "products", "row": 3, "column": "name", "reason": "control_characters"}
    ]


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "data:text/html,<script>x</script>", "vbscript:x", "//evil.example", "https://"]
)
def test_a_product_link_that_is_not_http_is_emptied_with_a_warning(tmp_path: Path, link: str) -> None:
    product = {"product_id": "P9", "name": "Ball", "price": "1", "currency": "EUR", "created_at": "2023-01-01"}
    frames = add_rows(
        tiny_shop(),
        Table.PRODUCTS,
        [{**product, "url": link, "image_url": "HTTPS://cdn.example.com/ball.png"}],
    )

    snapshot = _validate(tmp_path, frames)

    ball = snapshot.frames[Table.PRODUCTS].set_index("product_id").loc["P9"]
    assert pd.isna(ball["url"])
    assert ball["image_url"] == "HTTPS://cdn.example.com/ball.png"
    assert snapshot.nulled_by_column() == {"products": {"url": {"invalid_url": 1}}}


def test_a_malformed_csv_row_is_quarantined_by_number_and_the_rest_of_the_table_loads(tmp_path: Path) -> None:
    folder = write_shop(tiny_shop(), tmp_path / "shop")
    lines = (folder / "orders.csv").read_text(encoding="utf-8").splitlines()
    lines.insert(2, "O7,C1,2024-01-01T00:00:00Z,delivered,10,EUR,ivan@example.com")  # a field too many
    (folder / "orders.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    snapshot = validate_snapshot(load_raw(str(folder)), AS_OF)

    assert snapshot.quarantine.to_dict("records") == [
        {"table": "orders", "row": 2, "column": "", "reason": "malformed_row"}
    ]
    assert snapshot.counts[Table.ORDERS].input == 3
    assert set(snapshot.frames[Table.ORDERS]["order_id"]) == {"O1", "O2"}


def test_the_run_reports_emptied_cells_per_column_and_reason_and_lists_them_without_values(tmp_path: Path) -> None:
    frames = add_rows(
        tiny_shop(),
        Table.CUSTOMERS,
        [
            {**BASE, "customer_id": "C8", "phone": "123"},
            {**BASE, "customer_id": "C9", "phone": "456", "gender": "x"},
        ],
    )
    snapshot = _validate(tmp_path, frames)
    paths = RunPaths.for_day(tmp_path / "out", AS_OF)

    summary = summarise(snapshot)
    write_snapshot(snapshot, paths)

    assert summary.nulled_by_column == {"customers": {"gender": {"unknown_enum": 1}, "phone": {"invalid_phone": 2}}}
    assert summary.quarantined == 0
    listed = paths.nulled.read_text(encoding="utf-8")
    assert listed.splitlines()[0] == "table,row,column,reason"
    assert "123" not in listed and "456" not in listed
