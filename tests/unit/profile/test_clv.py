"""BG/NBD and Gamma-Gamma on small hand-computed cases: the summary, the likelihood, the predictions."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

from tasks.profile import bgnbd, clv, gamma_gamma

# CDNOW's published parameters (FHL 2005; Fader & Hardie 2013): realistic values for the prediction checks.
CDNOW = clv.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
CDNOW_SPEND = clv.GammaGammaParams(p=6.25, q=3.74, gamma=15.44, log_likelihood=0.0)
UNIT = clv.BgNbdParams(r=1.0, alpha=1.0, a=1.0, b=1.0, log_likelihood=0.0)


def _transactions() -> pd.DataFrame:
    rows = [
        # c1: two purchases on the first day (one purchase of 15), then 2 and 4 weeks later; two holdout days
        ("c1", "2024-01-01", 10.0),
        ("c1", "2024-01-01", 5.0),
        ("c1", "2024-01-15", 20.0),
        ("c1", "2024-01-29", 40.0),
        ("c1", "2024-02-10", 7.0),
        ("c1", "2024-02-10", 3.0),
        ("c1", "2024-02-20", 1.0),
        ("c1", "2024-03-05", 1.0),  # after the holdout: not counted anywhere
        # c2: one purchase late on the last calibration day (the time of day is dropped)
        ("c2", "2024-01-31T18:30:00", 12.0),
        # c3: first purchase in the holdout: not a calibration customer
        ("c3", "2024-02-05", 99.0),
    ]
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"])


def test_summary_merges_same_day_purchases_and_measures_in_weeks() -> None:
    summary = clv.summary_data(_transactions(), "2024-01-31", "2024-02-29", time_unit="weeks")

    assert list(summary.index) == ["c1", "c2"]  # c3 first bought after the calibration end
    c1 = summary.loc["c1"]
    assert c1["frequency"] == 2
    assert c1["recency"] == pytest.approx(4.0)  # 2024-01-01 .. 2024-01-29
    assert c1["T"] == pytest.approx(30 / 7)  # 2024-01-01 .. 2024-01-31
    assert c1["monetary_value"] == pytest.approx(30.0)  # (20 + 40) / 2: the first purchase (15) left out
    assert c1["holdout_frequency"] == 2  # 2024-02-10 (two orders, one day) and 2024-02-20
    assert c1["holdout_duration"] == pytest.approx(29 / 7)
    c2 = summary.loc["c2"]
    assert (c2["frequency"], c2["recency"], c2["T"], c2["monetary_value"]) == (0, 0.0, 0.0, 0.0)
    assert c2["holdout_frequency"] == 0


def test_summary_in_days_and_without_holdout() -> None:
    summary = clv.summary_data(_transactions(), pd.Timestamp("2024-01-20"), time_unit="days")

    assert list(summary.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert summary.loc["c1", ["frequency", "recency", "T", "monetary_value"]].tolist() == [1, 14.0, 19.0, 20.0]
    assert "c2" not in summary.index


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"customer_id": ["a"], "date": ["2024-01-01"]}), "lack column(s) amount"),
        (pd.DataFrame({"customer_id": ["a"], "date": ["01.02.2024"], "amount": [1.0]}), "not dates"),
        (pd.DataFrame({"customer_id": ["a"], "date": ["2024-01-01"], "amount": ["x"]}), "not numbers"),
        (pd.DataFrame({"customer_id": [None], "date": ["2024-01-01"], "amount": [1.0]}), "empty values"),
    ],
)
def test_summary_refuses_malformed_transactions_with_a_clear_error(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(clv.ClvDataError, match=re.escape(message)):
        clv.summary_data(frame, "2024-02-01")


def test_holdout_must_end_after_calibration() -> None:
    with pytest.raises(clv.ClvDataError, match="must be after"):
        clv.summary_data(_transactions(), "2024-01-31", "2024-01-31")


def test_log_likelihood_of_two_customers_matches_the_hand_computed_value() -> None:
    # r = alpha = a = b = 1. x = 1, t_x = 1, T = 2:
    #   B(1,2)/B(1,1) * G(2)/G(1) * 1/3^2 + B(2,1)/B(1,1) * G(2)/G(1) * 1/2^2 = 1/18 + 1/8 = 13/72
    # x = 0, T = 2: B(1,1)/B(1,1) * 1/3 = 1/3
    value = clv.bgnbd_log_likelihood(UNIT, [1, 0], [1.0, 0.0], [2.0, 2.0])

    assert value == pytest.approx(math.log(13 / 72) + math.log(1 / 3), rel=1e-12)


def _paper_likelihood(r: float, alpha: float, a: float, b: float, x: int, t_x: float, T: float) -> float:  # noqa: N803
    """FHL 2005 eq. 6 written out with plain gamma functions (no logs), for moderate numbers."""
    beta = math.gamma(a) * math.gamma(b) / math.gamma(a + b)
    nbd = math.gamma(r + x) / math.gamma(r) * alpha**r
    alive = math.gamma(a) * math.gamma(b + x) / math.gamma(a + b + x) / beta * nbd / (alpha + T) ** (r + x)
    if x == 0:
        return alive
    dead = math.gamma(a + 1) * math.gamma(b + x - 1) / math.gamma(a + b + x) / beta * nbd / (alpha + t_x) ** (r + x)
    return alive + dead


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 38.86), (2, 30.43, 38.86), (7, 12.5, 20.0), (1, 0.5, 0.5)])
def test_log_likelihood_of_one_customer_matches_the_papers_formula(x: int, t_x: float, T: float) -> None:  # noqa: N803
    expected = math.log(_paper_likelihood(0.243, 4.414, 0.793, 2.426, x, t_x, T))

    assert clv.bgnbd_log_likelihood(CDNOW, [x], [t_x], [T]) == pytest.approx(expected, rel=1e-10)


def test_bgnbd_gradient_matches_finite_differences() -> None:
    x = np.array([0.0, 1.0, 2.0, 5.0, 0.0])
    t_x = np.array([0.0, 3.0, 10.0, 30.0, 0.0])
    T = np.array([38.0, 20.0, 39.0, 35.0, 5.0])  # noqa: N806
    ux, inv = np.unique(x, return_inverse=True)
    weights = np.array([3.0, 1.0, 2.0, 1.0, 4.0])

    def value(theta: np.ndarray) -> float:
        return bgnbd._bgnbd_neg_loglik(theta, ux, inv, x, t_x, T, weights)[0]

    def gradient(theta: np.ndarray) -> np.ndarray:
        return bgnbd._bgnbd_neg_loglik(theta, ux, inv, x, t_x, T, weights)[1]

    theta = np.log([0.3, 4.0, 0.8, 2.5])
    assert optimize.check_grad(value, gradient, theta, epsilon=1e-7) < 1e-5


def test_gamma_gamma_gradient_matches_finite_differences() -> None:
    x = np.array([1.0, 2.0, 5.0, 3.0])
    m = np.array([0.8, 1.3, 0.6, 2.0])

    def value(theta: np.ndarray) -> float:
        return gamma_gamma._GammaGammaData(x, m).neg_loglik(theta)[0]

    def gradient(theta: np.ndarray) -> np.ndarray:
        return gamma_gamma._GammaGammaData(x, m).neg_loglik(theta)[1]

    assert optimize.check_grad(value, gradient, np.log([6.0, 3.7, 1.0]), epsilon=1e-7) < 1e-5


def test_p_alive_is_one_without_repeat_purchases_and_hand_computed_otherwise() -> None:
    assert clv.p_alive(CDNOW, [0, 0], [0.0, 0.0], [38.0, 0.0]).tolist() == [1.0, 1.0]
    # r = alpha = a = b = 1, x = 1, t_x = 1, T = 2: 1 / (1 + 1/1 * (3/2)^2) = 4/13
    assert clv.p_alive(UNIT, [1], [1.0], [2.0])[0] == pytest.approx(4 / 13)


def test_predictions_are_finite_for_first_time_buyers_and_customers_just_seen() -> None:
    # first-time buyers seen 0, 1 and 38 weeks ago; a customer who bought twice on the last two days
    x, t_x, T = np.array([0, 0, 0, 1]), np.array([0.0, 0.0, 0.0, 1 / 7]), np.array([0.0, 1.0, 38.0, 1 / 7])  # noqa: N806
    for values in (
        clv.p_alive(CDNOW, x, t_x, T),
        clv.expected_purchases(CDNOW, 13.0, x, t_x, T),
        clv.expected_order_value(CDNOW_SPEND, x, np.zeros(4)),
        clv.clv(CDNOW, CDNOW_SPEND, x, t_x, T, np.zeros(4), horizon=52, discount_rate=0.01),
        clv.expected_next_purchase_in(CDNOW, x, t_x, T),
    ):
        assert np.isfinite(values).all() and (values >= 0).all()


def test_expected_purchases_grow_with_the_horizon_and_start_at_zero() -> None:
    horizons = np.array([0.0, 1.0, 4.0, 13.0, 52.0, 520.0])
    for x, t_x, T in [(0, 0.0, 38.86), (2, 30.43, 38.86), (40, 38.0, 39.0), (3, 2.0, 39.0)]:  # noqa: N806
        values = clv.expected_purchases(CDNOW, horizons, x, t_x, T)

        assert values[0] == 0.0
        assert (np.diff(values) > 0).all()


@pytest.mark.parametrize(
    ("x", "t_x", "T", "t"), [(0, 0.0, 38.86, 39.0), (2, 30.43, 38.86, 39.0), (10, 36.0, 39.0, 13.0)]
)
def test_expected_purchases_match_the_textbook_hypergeometric_form(x: int, t_x: float, T: float, t: float) -> None:  # noqa: N803
    r, alpha, a, b = CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    if_alive = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    expected = if_alive * clv.p_alive(CDNOW, [x], [t_x], [T])[0]

    assert clv.expected_purchases(CDNOW, t, x, t_x, T) == pytest.approx(expected, rel=1e-9)


def test_expected_purchases_stay_accurate_for_heavy_buyers_where_the_textbook_form_overflows() -> None:
    # the textbook 2F1(r+x, b+x; a+b+x-1; z) is ~1e171 at x = 500 and overflows beyond; the references are
    # the textbook formula evaluated with mpmath at 400 significant digits
    values = clv.expected_purchases(CDNOW, 52.0, [500, 2000], [38.9, 38.9], [39.0, 39.0])

    np.testing.assert_allclose(values, [426.11970218318294, 1645.4507613286255], rtol=1e-9)


def test_expected_purchases_where_scipys_hyp2f1_returns_nan() -> None:
    # c - a - b = x + r - a + 1 is a whole number here, where scipy's hyp2f1 gives NaN for large c;
    # reference: the textbook formula with mpmath (260.8996619770863 if alive) times p_alive = 1 / (1 + 3/519)
    params = clv.BgNbdParams(r=2.0, alpha=10.0, a=3.0, b=20.0, log_likelihood=0.0)

    value = clv.expected_purchases(params, 520.0, 500, 0.0, 0.0)

    assert value == pytest.approx(260.8996619770863 / (1 + 3 / 519), rel=1e-7)


def test_expected_purchases_when_dropout_parameters_ran_off_to_infinity() -> None:
    # a fit on data without visible dropout heterogeneity: (1-z)^(a-1) underflows, 2F1 overflows;
    # reference: the textbook formula with mpmath at 60 digits
    params = clv.BgNbdParams(r=1.220783427324447, alpha=11.1496035721969, a=100907.224, b=4070027.92, log_likelihood=0)

    values = clv.expected_purchases(params, [13.0, 13.0, 52.0], [0, 1, 11], [0.0, 5.0, 37.0], [38.0, 38.0, 38.0])

    np.testing.assert_allclose(values, [0.32061682974767536, 0.4494389831432978, 10.644174688805714], rtol=1e-5)


def test_distinct_row_evaluation_gives_the_same_numbers_as_row_by_row() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, 5000).astype(float)
    T = rng.choice([10.0, 20.0, 39.0], 5000)  # noqa: N806
    t_x = np.where(x > 0, T * rng.random(5000), 0.0)

    many = clv.expected_purchases(CDNOW, 26.0, x, t_x, T)
    one_by_one = np.array(
        [clv.expected_purchases(CDNOW, 26.0, *row)[()] for row in zip(x[:50], t_x[:50], T[:50], strict=True)]
    )

    np.testing.assert_allclose(many[:50], one_by_one, rtol=1e-12)


def test_expected_order_value_is_the_population_mean_for_first_time_buyers_and_shrinks_otherwise() -> None:
    values = clv.expected_order_value(CDNOW_SPEND, [0, 1, 50], [0.0, 100.0, 100.0])

    assert values[0] == pytest.approx(6.25 * 15.44 / 2.74)
    assert values[0] == pytest.approx(CDNOW_SPEND.population_mean)
    assert values[0] < values[1] < values[2] < 100.0  # more purchases, closer to the customer's own mean


def test_clv_without_discount_is_expected_purchases_times_order_value() -> None:
    x, t_x, T, m = np.array([0, 3]), np.array([0.0, 20.0]), np.array([30.0, 35.0]), np.array([0.0, 40.0])  # noqa: N806
    plain = clv.clv(CDNOW, CDNOW_SPEND, x, t_x, T, m, horizon=52)
    discounted = clv.clv(CDNOW, CDNOW_SPEND, x, t_x, T, m, horizon=52, discount_rate=0.01)
    expected = clv.expected_purchases(CDNOW, 52.0, x, t_x, T) * clv.expected_order_value(CDNOW_SPEND, x, m)

    np.testing.assert_allclose(plain, expected, rtol=1e-12)
    assert (discounted < plain).all() and (discounted > plain / 1.01**52).all()
    assert clv.clv(CDNOW, CDNOW_SPEND, x, t_x, T, m, horizon=0).tolist() == [0.0, 0.0]


def test_next_purchase_is_the_median_wait_of_an_alive_customer() -> None:
    x, T = np.array([0, 1, 10]), np.array([38.0, 38.0, 38.0])  # noqa: N806
    waits = clv.expected_next_purchase_in(CDNOW, x, np.zeros(3), T)
    survival = ((CDNOW.alpha + T) / (CDNOW.alpha + T + waits)) ** (CDNOW.r + x)

    np.testing.assert_allclose(survival, 0.5)
    assert waits[0] > waits[1] > waits[2]


def test_fit_recovers_the_parameters_a_simulated_population_was_drawn_from() -> None:
    rng = np.random.default_rng(11)
    n, T = 20_000, 39.0  # noqa: N806
    lam = rng.gamma(0.5, 1 / 3.0, n)
    drop = rng.beta(1.2, 3.0, n)
    # the BG/NBD story: buy at rate lam; after each repeat purchase, leave for good with probability drop
    x, t_x = np.zeros(n), np.zeros(n)
    clock, alive = np.zeros(n), np.ones(n, bool)
    while alive.any():
        clock[alive] += rng.exponential(1 / lam[alive])
        bought = alive & (clock <= T)
        x[bought] += 1
        t_x[bought] = clock[bought]
        alive = bought & (rng.random(n) >= drop)

    fitted = clv.fit_bgnbd(x, t_x, np.full(n, T))

    assert fitted.r == pytest.approx(0.5, rel=0.15)
    assert fitted.alpha == pytest.approx(3.0, rel=0.15)
    assert fitted.a == pytest.approx(1.2, rel=0.35)
    assert fitted.b == pytest.approx(3.0, rel=0.35)


def test_thin_data_is_a_clear_fit_error_without_customer_data() -> None:
    with pytest.raises(clv.ClvFitError, match="at least 2 repeat buyers, found 1"):
        clv.fit_bgnbd([0, 0, 3], [0.0, 0.0, 5.0], [10.0, 10.0, 10.0])
    with pytest.raises(clv.ClvFitError, match="Gamma-Gamma needs at least 2 repeat buyers, found 0"):
        clv.fit_gamma_gamma([0, 0, 3], [0.0, 0.0, -5.0])
    with pytest.raises(clv.ClvFitError, match="recency must lie between 0 and T"):
        clv.fit_bgnbd([1, 1], [11.0, 1.0], [10.0, 10.0])


def test_fit_transactions_reports_counts_and_the_holdout() -> None:
    rng = np.random.default_rng(5)
    days = pd.date_range("2024-01-01", "2024-12-31", freq="D")
    rows = [
        (f"c{i}", day, float(rng.gamma(5, 4)))
        for i in range(300)
        for day in rng.choice(days, size=int(rng.integers(1, 8)), replace=False)
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])

    report = clv.fit_transactions(frame, "2024-09-30", "2024-12-31", "weeks")

    assert report.n_customers == int((frame.groupby("customer_id")["date"].min() <= "2024-09-30").sum())
    assert 0 < report.n_repeat_customers < report.n_customers
    assert report.holdout is not None and report.holdout.predicted_purchases > 0
