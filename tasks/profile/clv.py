"""Customer lifetime value: the BG/NBD purchase model and the Gamma-Gamma spend model, on scipy.

The models of Fader, Hardie & Lee (2005, "Counting your customers the easy way") and Fader & Hardie (2013,
"The Gamma-Gamma model of monetary value"). Each customer is summarised by three numbers measured in a
calibration window (``frequency`` = repeat purchase days, ``recency`` = time from the first to the last purchase,
``T`` = time from the first purchase to the end of the window) plus the mean spend of the repeat purchases.

* BG/NBD: while alive a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``; after each
  repeat purchase they drop out for good with probability ``p ~ Beta(a, b)``.
* Gamma-Gamma: a customer's purchase amounts are ``Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)`` across
  customers, independent of the purchase process.

Both are fitted by maximum likelihood on log-parameters with L-BFGS-B and analytic gradients. The BG/NBD
likelihood is evaluated once per distinct ``(frequency, recency, T)`` triple weighted by its count, and its
special functions once per distinct frequency: a million CDNOW-like customers are ~100,000 rows.

Pure functions: frames and arrays in, frames, arrays and small frozen models out; no I/O.

This module is the entry point: the customer summary, the value, predictions and the whole fit. The models
live in ``tasks.profile.bgnbd`` and ``tasks.profile.gamma_gamma``, the shared optimiser in ``tasks.profile.mle``;
their public names are importable from here.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tasks.profile.bgnbd import (
    A_NEAR_ONE,
    QUADRATURE_NODES,
    BgNbdParams,
    _distinct_rows,
    _if_alive_direct,
    _p_alive,
    bgnbd_log_likelihood,
    expected_next_purchase_in,
    expected_purchases,
    fit_bgnbd,
    p_alive,
)
from tasks.profile.gamma_gamma import GammaGammaParams, expected_order_value, fit_gamma_gamma
from tasks.profile.mle import (
    GRADIENT_TOLERANCE,
    LOG_BOUND,
    MIN_REPEAT_CUSTOMERS,
    RESTARTS,
    ClvFitError,
    FloatArray,
    _as_float,
)

__all__ = [
    "A_NEAR_ONE",
    "DAYS_PER_UNIT",
    "GRADIENT_TOLERANCE",
    "LOG_BOUND",
    "MIN_REPEAT_CUSTOMERS",
    "QUADRATURE_NODES",
    "RESTARTS",
    "SUMMARY_COLUMNS",
    "TRANSACTION_COLUMNS",
    "BgNbdParams",
    "ClvDataError",
    "ClvFitError",
    "ClvFitReport",
    "FloatArray",
    "GammaGammaParams",
    "HoldoutCheck",
    "TimeUnit",
    "bgnbd_log_likelihood",
    "clv",
    "expected_next_purchase_in",
    "expected_order_value",
    "expected_purchases",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_transactions",
    "holdout_by_frequency",
    "holdout_check",
    "p_alive",
    "predict",
    "summary_data",
]

TimeUnit = Literal["days", "weeks"]
DAYS_PER_UNIT: dict[str, int] = {"days": 1, "weeks": 7}
TRANSACTION_COLUMNS = ("customer_id", "date", "amount")
SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")


class ClvDataError(ValueError):
    """The transactions cannot be summarised: a missing column, a value that is not a date or a number."""


class HoldoutCheck(BaseModel):
    """Repeat purchase days in the holdout window: what happened against what the model expected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actual_purchases: int
    predicted_purchases: float


class ClvFitReport(BaseModel):
    """One fit of both models on a purchase log: parameters, customer counts, time taken, holdout check."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams
    n_customers: int
    n_repeat_customers: int
    time_unit: str
    fit_seconds: float
    holdout: HoldoutCheck | None = None


# --- the customer summary -------------------------------------------------------------------------------


def summary_data(
    transactions: pd.DataFrame,
    calibration_end: Any,
    holdout_end: Any = None,
    time_unit: TimeUnit = "weeks",
) -> pd.DataFrame:
    """Summarise purchases per customer as of ``calibration_end`` (inclusive), optionally with a holdout.

    ``transactions`` has one row per purchase: ``customer_id, date, amount``. Dates are calendar days (a time
    of day is dropped) and purchases on the same day are one purchase, amounts summed: the models count
    purchase occasions. Returns one row per customer whose first purchase is on or before ``calibration_end``,
    indexed by ``customer_id``:

    * ``frequency``: repeat purchase days (distinct purchase days minus one);
    * ``recency``: time from the first to the last purchase, ``T``: from the first purchase to
      ``calibration_end``, both in ``time_unit``;
    * ``monetary_value``: mean amount of the repeat purchases, the first excluded (Fader-Hardie), 0 when
      ``frequency`` is 0;
    * with ``holdout_end``: ``holdout_frequency`` (purchase days in ``(calibration_end, holdout_end]``) and
      ``holdout_duration`` (that window's length in ``time_unit``).
    """
    unit_days = _unit_days(time_unit)
    cal_end = _day(calibration_end, "calibration_end")
    hold_end = _day(holdout_end, "holdout_end") if holdout_end is not None else None
    if hold_end is not None and hold_end <= cal_end:
        raise ClvDataError(f"holdout_end {hold_end.date()} must be after calibration_end {cal_end.date()}")
    daily = _purchase_days(transactions)

    calibration = daily.loc[daily["date"] <= cal_end]
    if calibration.empty:
        raise ClvDataError(f"no purchase on or before calibration_end {cal_end.date()}")
    by_customer = calibration.groupby("customer_id", sort=True)
    first = by_customer["date"].min()
    days = by_customer["date"].size()
    total = by_customer["amount"].sum()
    first_amount = by_customer["amount"].first()  # daily is sorted by customer, then date
    frequency = (days - 1).astype("int64")
    summary = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (by_customer["date"].max() - first).dt.days / unit_days,
            "T": (cal_end - first).dt.days / unit_days,
            "monetary_value": ((total - first_amount) / frequency.where(frequency > 0)).fillna(0.0),
        }
    )
    if hold_end is not None:
        later = daily.loc[(daily["date"] > cal_end) & (daily["date"] <= hold_end)]
        counts = later.groupby("customer_id", sort=False).size()
        summary["holdout_frequency"] = counts.reindex(summary.index, fill_value=0).astype("int64")
        summary["holdout_duration"] = (hold_end - cal_end).days / unit_days
    summary.index.name = "customer_id"
    return summary


def _unit_days(time_unit: str) -> int:
    if time_unit not in DAYS_PER_UNIT:
        raise ClvDataError(f"time_unit must be one of {', '.join(DAYS_PER_UNIT)}, not {time_unit!r}")
    return DAYS_PER_UNIT[time_unit]


def _day(value: Any, name: str) -> pd.Timestamp:
    try:
        moment = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ClvDataError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None
    if pd.isna(moment):
        raise ClvDataError(f"{name} is missing")
    return moment.tz_localize(None).normalize() if moment.tzinfo else moment.normalize()


def _purchase_days(transactions: pd.DataFrame) -> pd.DataFrame:
    """Validate the transactions and merge each customer's purchases per calendar day, sorted."""
    missing = [column for column in TRANSACTION_COLUMNS if column not in transactions.columns]
    if missing:
        raise ClvDataError(f"transactions lack column(s) {', '.join(missing)} (need {', '.join(TRANSACTION_COLUMNS)})")
    frame = transactions[list(TRANSACTION_COLUMNS)]
    empty = frame.isna()
    if empty.any().any():
        counts = ", ".join(f"{column}: {int(n)}" for column, n in empty.sum().items() if n)
        raise ClvDataError(f"transactions have empty values ({counts} rows)")
    dates = frame["date"]
    if not pd.api.types.is_datetime64_any_dtype(dates):
        try:
            dates = pd.to_datetime(dates, format="ISO8601")
        except (TypeError, ValueError):
            raise ClvDataError("column 'date' has values that are not dates (YYYY-MM-DD)") from None
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    try:
        amounts = pd.to_numeric(frame["amount"]).astype("float64")
    except (TypeError, ValueError):
        raise ClvDataError("column 'amount' has values that are not numbers") from None
    merged = pd.DataFrame({"customer_id": frame["customer_id"], "date": dates.dt.normalize(), "amount": amounts})
    return merged.groupby(["customer_id", "date"], sort=True)["amount"].sum().reset_index()


# --- value ----------------------------------------------------------------------------------------------


def clv(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
    monetary_value: npt.ArrayLike,
    horizon: int,
    discount_rate: float = 0.0,
) -> FloatArray:
    """Discounted expected spend of each customer over the next ``horizon`` periods.

    ``CLV = E[M] * sum_{k=1..horizon} (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k``: the purchases expected in period
    ``k`` (BG/NBD, conditional on the customer's history), each period discounted at its end at rate ``d``
    per period, times the expected spend per purchase (Gamma-Gamma). Spend and purchase counts are
    independent in the Gamma-Gamma model, which is what allows the product. With ``d = 0`` this is
    ``E[M] * E[Y(horizon)]``.
    """
    if horizon < 0 or int(horizon) != horizon:
        raise ValueError("horizon must be a whole number of periods, 0 or more")
    if discount_rate <= -1.0 or not math.isfinite(discount_rate):
        raise ValueError("discount_rate must be a finite rate above -1")
    x, t_x, big_t = _as_float(frequency), _as_float(recency), _as_float(T)
    alive = _p_alive(bgnbd, x, t_x, big_t)
    spend = expected_order_value(gamma_gamma, x, monetary_value)
    if horizon == 0:
        return np.zeros_like(alive)
    # E[Y(k) | alive] only depends on (x, T): evaluate it on the distinct pairs, for every period at once
    xb, tb = np.broadcast_arrays(x, big_t)
    codes, (ux, ut) = _distinct_rows(xb.ravel(), tb.ravel())
    periods = np.arange(1, int(horizon) + 1, dtype=np.float64)
    cumulative = _if_alive_direct(bgnbd, periods[:, None], ux[None, :], ut[None, :])
    per_period = np.diff(cumulative, axis=0, prepend=0.0)
    discounted = (per_period / (1.0 + discount_rate) ** periods[:, None]).sum(axis=0)
    return np.asarray(discounted[codes].reshape(xb.shape) * alive * spend, dtype=np.float64)


def holdout_check(bgnbd: BgNbdParams, summary: pd.DataFrame) -> HoldoutCheck:
    """Compare the repeat purchase days seen in the holdout window with the BG/NBD conditional expectation."""
    if "holdout_frequency" not in summary.columns:
        raise ClvDataError("the summary has no holdout window: pass holdout_end to summary_data")
    predicted = expected_purchases(
        bgnbd, summary["holdout_duration"], summary["frequency"], summary["recency"], summary["T"]
    )
    return HoldoutCheck(
        actual_purchases=int(summary["holdout_frequency"].sum()), predicted_purchases=float(predicted.sum())
    )


def holdout_by_frequency(bgnbd: BgNbdParams, summary: pd.DataFrame, top: int = 7) -> pd.DataFrame:
    """Mean holdout purchases per customer, actual against predicted, by calibration frequency (``top`` and up).

    The conditional-expectations check of FHL 2005 (their Figure 4): one row per frequency ``0 .. top`` with
    ``customers``, ``actual`` and ``predicted``.
    """
    if "holdout_frequency" not in summary.columns:
        raise ClvDataError("the summary has no holdout window: pass holdout_end to summary_data")
    predicted = expected_purchases(
        bgnbd, summary["holdout_duration"], summary["frequency"], summary["recency"], summary["T"]
    )
    frame = pd.DataFrame(
        {
            "frequency": summary["frequency"].clip(upper=top).to_numpy(),
            "actual": summary["holdout_frequency"].to_numpy(np.float64),
            "predicted": predicted,
        }
    )
    table = frame.groupby("frequency").agg(
        customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
    )
    return table.reset_index()


def predict(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    summary: pd.DataFrame,
    horizon: int,
    discount_rate: float = 0.0,
) -> pd.DataFrame:
    """Every prediction for every customer of a summary, over ``horizon`` periods; same index, no NaN."""
    x, t_x, big_t, m = (summary[column].to_numpy(np.float64) for column in SUMMARY_COLUMNS)
    return pd.DataFrame(
        {
            "p_alive": _p_alive(bgnbd, x, t_x, big_t),
            "expected_purchases": expected_purchases(bgnbd, float(horizon), x, t_x, big_t),
            "expected_order_value": expected_order_value(gamma_gamma, x, m),
            "clv": clv(bgnbd, gamma_gamma, x, t_x, big_t, m, horizon, discount_rate),
            "next_purchase_in": expected_next_purchase_in(bgnbd, x, t_x, big_t),
        },
        index=summary.index,
    )


def fit_transactions(
    transactions: pd.DataFrame,
    calibration_end: Any,
    holdout_end: Any = None,
    time_unit: TimeUnit = "weeks",
) -> ClvFitReport:
    """Summarise a purchase log, fit BG/NBD and Gamma-Gamma, and check the forecast on a holdout if given.

    ``fit_seconds`` covers the summary and both fits (not reading the log, not the holdout check).
    """
    started = time.perf_counter()
    summary = summary_data(transactions, calibration_end, holdout_end, time_unit)
    bgnbd = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    gamma_gamma = fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    elapsed = time.perf_counter() - started
    return ClvFitReport(
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        n_customers=len(summary),
        n_repeat_customers=int((summary["frequency"] > 0).sum()),
        time_unit=time_unit,
        fit_seconds=round(elapsed, 4),
        holdout=holdout_check(bgnbd, summary) if holdout_end is not None else None,
    )
