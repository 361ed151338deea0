"""BG/NBD and Gamma-Gamma reproduce the published CDNOW fits (Fader, Hardie & Lee 2005; Fader & Hardie 2013).

The cohort: the 2,357 customers of CDNOW_sample.txt (the 1/10th sample of the customers who first bought in
the first quarter of 1997), a 39-week calibration window ending 1997-09-30, purchases on the same day merged,
time in weeks; the holdout is the following 39 weeks, to 1998-06-30.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.profile import clv
from tests.datasets import cdnow_hardie_summary, cdnow_transactions

CALIBRATION_END = "1997-09-30"
HOLDOUT_END = "1998-06-30"
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return cdnow_transactions()


@pytest.fixture(scope="module")
def summary(transactions: pd.DataFrame) -> pd.DataFrame:
    return clv.summary_data(
        transactions[["customer_id", "date", "amount"]], CALIBRATION_END, HOLDOUT_END, time_unit="weeks"
    )


@pytest.fixture(scope="module")
def bgnbd(summary: pd.DataFrame) -> clv.BgNbdParams:
    return clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])


def _relative_error(value: float, published: float) -> float:
    return abs(value - published) / abs(published)


def test_the_sample_file_is_the_papers_cohort_of_2357_customers_with_946_repeat_buyers(
    summary: pd.DataFrame,
) -> None:
    assert len(summary) == 2357
    assert int((summary["frequency"] > 0).sum()) == 946


def test_summary_matches_hardies_own_calibration_summary(transactions: pd.DataFrame, summary: pd.DataFrame) -> None:
    # Hardie's file rounds t_x, T and zbar to two decimals and numbers customers by the sample's second id.
    sample_ids = transactions.groupby("customer_id")["sample_id"].first()
    ours = summary.assign(ID=sample_ids.reindex(summary.index).to_numpy()).set_index("ID").sort_index()
    hardie = cdnow_hardie_summary().set_index("ID").sort_index()

    assert (ours["frequency"].to_numpy() == hardie["x"].to_numpy()).all()
    np.testing.assert_allclose(ours["recency"], hardie["t_x"], atol=0.006)
    np.testing.assert_allclose(ours["T"], hardie["T"], atol=0.006)
    np.testing.assert_allclose(ours["monetary_value"], hardie["zbar"], atol=0.006)


def test_bgnbd_reproduces_the_published_parameters_within_half_a_percent(bgnbd: clv.BgNbdParams) -> None:
    fitted = bgnbd.model_dump()
    errors = {name: _relative_error(fitted[name], published) for name, published in PUBLISHED_BGNBD.items()}

    assert max(errors.values()) < 0.005, (fitted, errors)


def test_bgnbd_fit_is_deterministic(summary: pd.DataFrame, bgnbd: clv.BgNbdParams) -> None:
    again = clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])

    assert again == bgnbd


def test_gamma_gamma_on_repeat_buyers_mean_repeat_spend_reproduces_the_published_parameters(
    summary: pd.DataFrame,
) -> None:
    # The published fit uses each repeat buyer's mean spend over the repeat purchases (the first one excluded).
    fitted = clv.fit_gamma_gamma(summary["frequency"], summary["monetary_value"]).model_dump()
    errors = {name: _relative_error(fitted[name], published) for name, published in PUBLISHED_GAMMA_GAMMA.items()}

    assert max(errors.values()) < 0.005, (fitted, errors)


def test_holdout_total_is_forecast_within_fifteen_percent(summary: pd.DataFrame, bgnbd: clv.BgNbdParams) -> None:
    check = clv.holdout_check(bgnbd, summary)
    print(f"\nCDNOW holdout: actual {check.actual_purchases}, predicted {check.predicted_purchases:.1f}")

    # 1,882 repeat purchase days happened in weeks 40-78; the conditional forecast is 1,653.4 (-12.1%).
    # The model under-forecasts this cohort's second 39 weeks; the number is pinned to catch regressions.
    assert check.actual_purchases == 1882
    assert check.predicted_purchases == pytest.approx(1653.4, rel=0.002)
    assert abs(check.predicted_purchases / check.actual_purchases - 1) < 0.15


def test_holdout_by_calibration_frequency_tracks_the_actual_means(
    summary: pd.DataFrame, bgnbd: clv.BgNbdParams
) -> None:
    table = clv.holdout_by_frequency(bgnbd, summary, top=7)
    print("\n" + table.to_string(index=False, float_format="{:.3f}".format))

    low = table.loc[table["frequency"] <= 6]
    ratio = low["predicted"] / low["actual"]
    # The paper's conditional-expectation check: under-forecast by up to 25% for x = 1 and 2, close elsewhere.
    assert ((ratio > 0.70) & (ratio < 1.15)).all(), table
    assert table["customers"].sum() == len(summary)
