"""The customer profile: one row per customer as of a date, and what goes with it.

``build_profile`` turns the day's clean tables into:

* the profile (``PROFILE_DTYPES``): recency, frequency, monetary value, tenure and rhythm;
  RFM scores and segment (``tasks/profile/rfm.py``); lifecycle stage (``tasks/profile/lifecycle.py``);
  predicted value (``tasks/profile/clv.py``); VIP; top interest (``tasks/profile/interests.py``); the latest
  incident (``tasks/profile/unhappy.py``); days until the birthday (``tasks/profile/birthdays.py``); consent;
* interests per (customer, category), replenishment per (customer, product) and incidents,
  written beside the profile for campaigns that need the detail.

Purchases are orders that were not cancelled. Days are the customer's local days (their time
zone), so two orders either side of midnight UTC on one local evening are one purchase day.
Missing stays missing: a customer who never bought has no recency, no rhythm and no prediction
(``<NA>``), never a made-up number, and segments treat a missing value as not matching.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.data.snapshot import read_table
from tasks.kernel import progress
from tasks.kernel.enums import OrderStatus, Table
from tasks.kernel.ids import IdCodes, encode_ids
from tasks.kernel.paths import RunPaths, detail_file
from tasks.kernel.settings import Settings
from tasks.profile.birthdays import days_until_birthday
from tasks.profile.interests import category_affinity, top_category
from tasks.profile.lifecycle import RETURN_GOALS, lifecycle_stage
from tasks.profile.replenishment import replenishment
from tasks.profile.rfm import rfm_segment, score
from tasks.profile.schema import PROFILE_DTYPES
from tasks.profile.unhappy import SURVEY_ANSWERS_FILE, incidents, latest_incident

logger = logging.getLogger("loyalty.profile")

# Orders that did not turn into a purchase (cancelled), or were refunded (returned), do not count towards R, F or M.
NOT_PURCHASES = frozenset({OrderStatus.CANCELLED.value, OrderStatus.RETURNED.value})


@dataclass(frozen=True)
class ProfileRules:
    """The shop's choices the profile depends on (from settings)."""

    return_goal_days: int = RETURN_GOALS["monthly"]
    lifecycle_factors: tuple[float, float, float] = (1.5, 3.0, 6.0)
    rfm_recency_edges: tuple[float, float, float, float] | None = None
    rfm_frequency_edges: tuple[float, float, float, float] | None = None
    rfm_monetary_edges: tuple[float, float, float, float] | None = None
    vip_share: float = 0.05
    interest_half_life_days: float = 90.0
    unhappy_window_days: int = 90
    unhappy_max_rating: int = 2
    late_after_days: int = 7
    clv_horizon_days: int = 365
    clv_discount_rate: float = 0.10
    replenish_min_purchases: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> ProfileRules:
        """Take every rule from the setting of the same name; the return goal is named, in days here."""
        same = {f.name: getattr(settings, f.name) for f in fields(cls) if f.name != "return_goal_days"}
        return cls(return_goal_days=RETURN_GOALS[settings.return_goal], **same)


@dataclass(frozen=True)
class ProfileParts:
    """The profile and the detail tables written beside it."""

    profile: pd.DataFrame
    interests: pd.DataFrame
    replenishment: pd.DataFrame
    incidents: pd.DataFrame
    purchase_days: pd.DataFrame  # (customer_id, day, total): what the KPIs are computed from

    def write(self, profile_file: Path) -> None:
        """Write the profile, and each detail table beside it as ``<name>.parquet``."""
        profile_file.parent.mkdir(parents=True, exist_ok=True)
        self.profile.to_parquet(profile_file, index=False)
        for name in DETAILS:
            getattr(self, name).to_parquet(detail_file(profile_file, name), index=False)


# The detail tables written beside the profile.
DETAILS = ("interests", "replenishment", "incidents", "purchase_days")


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def _local_day_by_code(at: pd.Series, zone_codes: np.ndarray, zone_names: np.ndarray) -> pd.Series:
    stamps = pd.DatetimeIndex(at)
    out = np.full(len(at), np.datetime64("NaT"), dtype="datetime64[ns]")
    for code, zone in enumerate(zone_names):
        mask = zone_codes == code
        local = stamps[mask].tz_convert(str(zone)).tz_localize(None).floor("D")
        out[mask] = local.to_numpy()
    return pd.Series(out, index=at.index)


def order_lines(orders: pd.DataFrame, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Join order lines to ``orders`` by position (a hash lookup per line, no merge copying every column).

    Returns the rows of ``items`` whose order is in ``orders``, and that order's position in ``orders``.
    """
    position = pd.Index(orders["order_id"]).get_indexer(pd.Index(items["order_id"]))
    rows = np.flatnonzero(position >= 0)
    return rows, position[rows]


def utc_stamps(column: pd.Series) -> np.ndarray:
    """Timestamps as UTC datetime64[ns] (a tz-aware column's to_numpy() would be one Timestamp object per row)."""
    return np.asarray(pd.to_datetime(column, utc=True).to_numpy(dtype="datetime64[ns]"))


def customers_local_day(at: pd.Series, customer_ids: pd.Series, customers: pd.DataFrame) -> pd.Series:
    """Return each timestamp's calendar day in its customer's time zone (UTC for an unknown customer).

    Zones are coded once per customer and looked up by position, not mapped as strings per row.
    """
    zone_codes, zone_names = pd.factorize(customers["timezone"].fillna("UTC").astype(str))
    position = pd.Index(customers["customer_id"]).get_indexer(customer_ids)
    utc = len(zone_names)
    per_row = np.where(position >= 0, zone_codes[np.maximum(position, 0)], utc)
    return _local_day_by_code(at, per_row, np.append(np.asarray(zone_names, dtype=object), "UTC"))


def purchases_by_day(customers: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (customer, local purchase day): the day's spend; cancelled orders left out."""
    bought = orders.loc[~orders["status"].isin(NOT_PURCHASES), ["order_id", "customer_id", "created_at", "total"]]
    bought = bought.assign(day=customers_local_day(bought["created_at"], bought["customer_id"], customers))
    return bought.groupby(["customer_id", "day"], sort=True, observed=True)["total"].sum().reset_index()


def _rfm_base(customers: pd.DataFrame, orders: pd.DataFrame, days: pd.DataFrame, as_of: date) -> pd.DataFrame:
    bought = orders.loc[~orders["status"].isin(NOT_PURCHASES)]
    per_customer = bought.groupby("customer_id", sort=False).agg(
        orders=("order_id", "size"),
        first_order_at=("created_at", "min"),
        last_order_at=("created_at", "max"),
        monetary_total=("total", "sum"),
    )
    gaps = days["day"].diff().dt.days.where(days["customer_id"].eq(days["customer_id"].shift()))
    rhythm = (
        days.assign(gap=gaps)
        .groupby("customer_id", sort=False)
        .agg(
            purchase_days=("day", "size"),
            first_day=("day", "min"),
            last_day=("day", "max"),
            median_gap=("gap", "median"),
        )
    )
    profile = customers[["customer_id"]].merge(per_customer, how="left", left_on="customer_id", right_index=True)
    profile = profile.merge(rhythm, how="left", left_on="customer_id", right_index=True)
    profile["orders"] = profile["orders"].fillna(0).astype("int64")
    profile["purchase_days"] = profile["purchase_days"].fillna(0).astype("int64")
    profile["monetary_total"] = profile["monetary_total"].fillna(0.0).round(2)
    buyers = profile["orders"] > 0
    profile["avg_order_value"] = (
        (profile["monetary_total"] / profile["orders"].where(buyers)).round(2).astype("Float64")
    )
    today = pd.Timestamp(as_of)
    profile["days_since_last_order"] = (today - profile["last_day"]).dt.days.astype("Int64")
    profile["tenure_days"] = (today - profile["first_day"]).dt.days.astype("Int64")
    span = (profile["last_day"] - profile["first_day"]).dt.days
    profile["avg_interpurchase_days"] = (
        span / (profile["purchase_days"] - 1).where(profile["purchase_days"] > 1)
    ).astype("Float64")
    return profile


def build_profile(
    tables: Mapping[Table, pd.DataFrame],
    as_of: date,
    rules: ProfileRules = ProfileRules(),
    step_done: Callable[[str], None] = lambda name: None,
    answers: pd.DataFrame | None = None,
) -> ProfileParts:
    """Compute every customer's profile as of a date from the day's clean tables.

    ``step_done`` is called with each step's name as it finishes (the benchmark times them).
    Ids are turned into integer codes first (``tasks/kernel/ids.py``) and back at the end.
    ``answers``: the survey answers of the run (``tasks/profile/unhappy.py``), if any.
    """
    coded, codes = encode_ids(tables)
    step_done("ids to integer codes")
    return build_coded_profile(coded, codes, as_of, rules, step_done, answers)


def build_coded_profile(
    tables: Mapping[Table, pd.DataFrame],
    codes: IdCodes,
    as_of: date,
    rules: ProfileRules = ProfileRules(),
    step_done: Callable[[str], None] = lambda name: None,
    answers: pd.DataFrame | None = None,
) -> ProfileParts:
    """``build_profile`` on tables whose ids ``encode_ids`` has coded already (``answers`` keep their ids).

    A caller that reads the tables itself codes them first and keeps only the coded tables, so the
    string ids are freed before the profile's work begins (the daily run and the benchmark do).
    """
    customers = tables[Table.CUSTOMERS]
    orders = tables[Table.ORDERS]
    days = purchases_by_day(customers, orders)
    profile = _rfm_base(customers, orders, days, as_of)
    step_done("recency, frequency, monetary")

    # RFM: scores among buyers, and the named segment
    buyers = profile["orders"] > 0
    profile["r_score"] = score(profile["days_since_last_order"].where(buyers), rules.rfm_recency_edges, False)
    profile["f_score"] = score(profile["purchase_days"].where(buyers), rules.rfm_frequency_edges)
    profile["m_score"] = score(profile["monetary_total"].where(buyers), rules.rfm_monetary_edges)
    profile["rfm_segment"] = rfm_segment(profile["r_score"], profile["f_score"])
    profile["lifecycle"] = lifecycle_stage(
        profile["purchase_days"],
        profile["days_since_last_order"],
        profile["median_gap"],
        rules.return_goal_days,
        rules.lifecycle_factors,
    )
    step_done("RFM scores and lifecycle")

    # predicted value: BG/NBD + Gamma-Gamma over local purchase days, in days
    value = predicted_value(days, as_of, rules.clv_horizon_days, rules.clv_discount_rate)
    profile = profile.merge(value, how="left", on="customer_id")
    profile["prediction_basis"] = profile["prediction_basis"].fillna("none").astype("string")
    profile["vip"] = _vip(profile, rules.vip_share)
    step_done("predicted value (BG/NBD + Gamma-Gamma)")

    # interests, replenishment, incidents
    lines = _purchase_lines(tables, customers)
    events = tables.get(Table.EVENTS, _empty(["customer_id", "product_id", "type", "at", "rating"]))
    interests = category_affinity(
        lines,
        events,
        _categories(tables),
        as_of,
        rules.interest_half_life_days,
    )
    profile["top_category"] = profile["customer_id"].map(top_category(interests)).astype("string")
    step_done("interests")
    refills = replenishment(lines, as_of, rules.replenish_min_purchases)
    step_done("replenishment")
    found = incidents(
        orders,
        tables.get(Table.ORDER_EVENTS, _empty(["order_id", "status", "at"])),
        events,
        rules.unhappy_max_rating,
        rules.late_after_days,
        _coded_answers(answers, codes),
    )
    found = found.loc[found["at"] < pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)]
    latest = latest_incident(found, as_of, rules.unhappy_window_days)
    profile = profile.merge(latest, how="left", on="customer_id")
    profile["unhappy"] = profile["unhappy"].astype("boolean").fillna(False).astype(bool)
    profile["unhappy_reason"] = profile["unhappy_reason"].astype("string")
    profile["days_since_unhappy"] = profile["days_since_unhappy"].astype("Int64")
    step_done("incidents")

    # who they are and what they agreed to
    # the profile has a row per customer: take their columns by position, not by a lookup per column
    people = customers.iloc[pd.Index(customers["customer_id"]).get_indexer(profile["customer_id"])]
    profile["days_until_birthday"] = days_until_birthday(people["birth_date"], as_of).to_numpy()
    profile["has_birthday"] = profile["days_until_birthday"].notna().to_numpy()
    for flag in ("email_opt_in", "sms_opt_in"):
        profile[flag] = people[flag].astype("boolean").fillna(False).astype(bool).to_numpy()
    profile["has_email"] = people["email"].notna().to_numpy()
    profile["has_phone"] = people["phone"].notna().to_numpy()
    for column in ("locale", "country", "gender"):
        profile[column] = people[column].astype("string").to_numpy()
    # pets: the customers' own word (``tasks/state/preference_snapshot.py``), or a column the shop gives
    pets = people["pets"] if "pets" in people.columns else pd.Series(pd.NA, index=people.index)
    profile["pets"] = pets.astype("string").to_numpy()
    profile = codes.decode_frame(profile[list(PROFILE_DTYPES)]).astype(PROFILE_DTYPES)
    parts = ProfileParts(
        profile=profile.reset_index(drop=True),
        interests=codes.decode_frame(interests),
        replenishment=codes.decode_frame(refills),
        incidents=codes.decode_frame(found),
        purchase_days=codes.decode_frame(days),
    )
    step_done("birthdays, consent, dtypes, ids back")
    return parts


def _coded_answers(answers: pd.DataFrame | None, codes: IdCodes) -> pd.DataFrame | None:
    """Survey answers with the profile's id codes; an answer of a customer the data does not know is left out."""
    if answers is None or answers.empty:
        return None
    customer = pd.Index(codes.ids["customer_id"]).get_indexer(pd.Index(answers["customer_id"].astype(str)))
    order = pd.Index(codes.ids["order_id"]).get_indexer(pd.Index(answers["order_id"].astype(str)))
    known = customer >= 0
    return answers.loc[known].assign(
        customer_id=customer[known].astype(np.int32), order_id=order[known].astype(np.int32)
    )


VALUE_COLUMNS = (
    "customer_id",
    "p_alive",
    "expected_purchases_90d",
    "expected_order_value",
    "predicted_clv",
    "days_until_next_order",
    "prediction_basis",
)


def predicted_value(days: pd.DataFrame, as_of: date, horizon_days: int, yearly_discount: float) -> pd.DataFrame:
    """Fit BG/NBD and Gamma-Gamma on the shop's purchase days (in weeks) and predict for every buyer.

    Returns ``VALUE_COLUMNS`` per buyer, ``prediction_basis`` = ``bgnbd``. When the shop's history is too
    thin to fit (fewer than two repeat buyers, or the optimiser fails) it returns no rows: the profile then
    leaves the predictions missing (basis ``none``) rather than inventing them.
    """
    from tasks.profile import clv  # scipy only when a profile is built

    transactions = days.rename(columns={"day": "date", "total": "amount"})
    try:
        summary = clv.summary_data(transactions, as_of, time_unit="weeks")
        bgnbd = clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
        gamma_gamma = clv.fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    except (clv.ClvDataError, clv.ClvFitError) as exc:
        logger.warning("no predicted value this run (prediction_basis 'none'): %s", exc)
        return pd.DataFrame({c: pd.Series(dtype="object") for c in VALUE_COLUMNS})
    weeks = max(1, round(horizon_days / 7))
    weekly_discount = (1 + yearly_discount) ** (1 / 52) - 1
    predicted = clv.predict(bgnbd, gamma_gamma, summary, weeks, weekly_discount)
    x, t_x, big_t = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    return pd.DataFrame(
        {
            "customer_id": summary.index.to_numpy(),
            "p_alive": predicted["p_alive"].round(4).to_numpy(),
            "expected_purchases_90d": clv.expected_purchases(bgnbd, 90 / 7, x, t_x, big_t).round(3),
            "expected_order_value": predicted["expected_order_value"].round(2).to_numpy(),
            "predicted_clv": predicted["clv"].round(2).to_numpy(),
            "days_until_next_order": np.round(predicted["next_purchase_in"].to_numpy() * 7).astype("int64"),
            "prediction_basis": "bgnbd",
        }
    )


def _vip(profile: pd.DataFrame, share: float) -> pd.Series:
    """The top ``share`` of buyers by predicted value; by spend where there is no prediction."""
    buyers = profile["orders"] > 0
    value = profile["predicted_clv"].astype("Float64").fillna(profile["monetary_total"]).where(buyers)
    if not buyers.any():
        return pd.Series(False, index=profile.index)
    cutoff = value.dropna().quantile(1 - share)
    return (value >= cutoff).fillna(False).astype(bool) & buyers


def _categories(tables: Mapping[Table, pd.DataFrame]) -> pd.Series:
    products = tables.get(Table.PRODUCTS)
    if products is None or products.empty:
        return pd.Series(dtype="object")
    return products.set_index("product_id")["category"]


def _purchase_lines(tables: Mapping[Table, pd.DataFrame], customers: pd.DataFrame) -> pd.DataFrame:
    """Return one row per purchased order line: customer_id, order_id, product_id, amount, at, day (local)."""
    orders = tables[Table.ORDERS]
    items = tables.get(Table.ORDER_ITEMS)
    if items is None or items.empty:
        return pd.DataFrame(
            {
                "customer_id": pd.Series(dtype="object"),
                "order_id": pd.Series(dtype="object"),
                "product_id": pd.Series(dtype="object"),
                "amount": pd.Series(dtype="float64"),
                "at": pd.Series(dtype="datetime64[ns, UTC]"),
                "day": pd.Series(dtype="datetime64[ns]"),
            }
        )
    bought = orders.loc[~orders["status"].isin(NOT_PURCHASES), ["order_id", "customer_id", "created_at"]]
    rows, order_at = order_lines(bought, items)  # lines of purchased orders
    customer = pd.Series(bought["customer_id"].to_numpy()[order_at])
    at = pd.Series(pd.to_datetime(utc_stamps(bought["created_at"])[order_at], utc=True))
    return pd.DataFrame(
        {
            "customer_id": customer,
            "order_id": items["order_id"].to_numpy()[rows],
            "product_id": items["product_id"].to_numpy()[rows],
            "amount": items["quantity"].to_numpy(dtype=float)[rows] * items["unit_price"].to_numpy(dtype=float)[rows],
            "at": at,
            "day": customers_local_day(at, customer, customers),
        }
    )


# The tables the profile reads (stock events are for campaigns, not for the profile).
PROFILE_INPUTS = (Table.CUSTOMERS, Table.PRODUCTS, Table.ORDERS, Table.ORDER_ITEMS, Table.ORDER_EVENTS, Table.EVENTS)


def lifecycle_sizes(profile: pd.DataFrame) -> dict[str, int]:
    """Count customers per lifecycle stage, in the stages' order."""
    counts = profile["lifecycle"].value_counts()
    return {stage: int(counts.get(stage, 0)) for stage in ("prospect", "new", "active", "at_risk", "lapsed", "lost")}


@task(cache_policy=NO_CACHE)
def profile_customers(paths: RunPaths, as_of: date, settings: Settings) -> dict[str, int]:
    """Build the profile and its detail tables as of a date, snapshot the segments; return segment sizes.

    Sizes: customers per lifecycle stage, then per named segment of ``campaigns/segments.yaml``
    (a customer may be in several).
    """
    from tasks.profile.segments import assign_segments, load_segments, segment_sizes, write_snapshot

    progress.advance("profile")
    catalog = settings.campaigns_dir / "segments.yaml"
    segments = load_segments(catalog) if catalog.exists() else []  # a bad expression stops the run here
    # coded as read: the string ids are freed before the profile's work begins
    tables, codes = encode_ids({table: read_table(paths, table, arrow_strings=True) for table in PROFILE_INPUTS})
    answers_file = paths.table(Table.ORDERS).with_name(SURVEY_ANSWERS_FILE)  # written by the daily run, if any
    answers = pd.read_parquet(answers_file) if answers_file.exists() else None
    parts = build_coded_profile(tables, codes, as_of, ProfileRules.from_settings(settings), answers=answers)
    parts.write(paths.profile)
    write_snapshot(paths, assign_segments(parts.profile, segments))
    sizes = {f"lifecycle: {stage}": n for stage, n in lifecycle_sizes(parts.profile).items()}
    return sizes | segment_sizes(parts.profile, segments)
