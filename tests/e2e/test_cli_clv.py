"""``loyalty clv fit`` as a user runs it: a purchase log in, BG/NBD and Gamma-Gamma parameters out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def _small_log(path: Path) -> Path:
    """A year of purchases by 600 customers, drawn the BG/NBD way: buy at a rate, maybe leave after each."""
    rng = np.random.default_rng(8)
    first_day = pd.Timestamp("2024-01-01")
    rows = []
    for i in range(600):
        rate, leave = rng.gamma(0.8, 1 / 20), rng.beta(1.0, 3.0)  # purchases per day, dropout per purchase
        day = float(rng.integers(0, 240))
        while day < 366:
            rows.append((f"C{i:04d}", (first_day + pd.Timedelta(days=int(day))).date().isoformat(), rng.gamma(4, 10)))
            if len(rows) > 1 and rows[-2][0] == rows[-1][0] and rng.random() < leave:
                break
            day += rng.exponential(1 / rate)
    frame = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    frame.round({"amount": 2}).to_csv(path, index=False)
    return path


def _fit(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["clv", "fit", *args])
    return result.exit_code, result.stdout, result.stderr


def test_fit_prints_parameters_counts_and_holdout_as_json(tmp_path: Path) -> None:
    log = _small_log(tmp_path / "purchases.csv")

    code, stdout, stderr = _fit(
        "--transactions", str(log), "--calibration-end", "2024-09-30", "--holdout-end", "2024-12-31", "--json"
    )

    assert code == 0, stderr
    report = json.loads(stdout)
    assert set(report["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert {"p", "q", "gamma"} <= set(report["gamma_gamma"])
    # drawn with r = 0.8, alpha = 20 days (2.9 weeks), a = 1, b = 3; measured 0.95, 3.85, 1.00, 3.06
    bgnbd = report["bgnbd"]
    assert 0.5 < bgnbd["r"] < 1.5 and 2 < bgnbd["alpha"] < 6 and 0.5 < bgnbd["a"] < 2 and 1.5 < bgnbd["b"] < 6
    frame = pd.read_csv(log)
    first = frame.groupby("customer_id")["date"].min()
    assert report["n_customers"] == int((first <= "2024-09-30").sum())
    assert 0 < report["n_repeat_customers"] < report["n_customers"]
    assert report["fit_seconds"] < 5
    holdout = report["holdout"]  # measured: 560 actual, 549.7 predicted
    assert abs(holdout["predicted_purchases"] / holdout["actual_purchases"] - 1) < 0.1


def test_fit_without_json_prints_a_readable_table(tmp_path: Path) -> None:
    log = _small_log(tmp_path / "purchases.csv")

    code, stdout, stderr = _fit("--transactions", str(log), "--calibration-end", "2024-09-30", "--time-unit", "days")

    assert code == 0, stderr
    assert "BG/NBD" in stdout and "Gamma-Gamma" in stdout and "repeat buyers" in stdout
    assert "holdout" not in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--transactions", "missing.csv", "--calibration-end", "2024-09-30"], "missing.csv: no such file"),
        (["--calibration-end", "30.09.2024"], "--calibration-end '30.09.2024' is not a date (YYYY-MM-DD)"),
        (["--calibration-end", "2024-09-30", "--holdout-end", "soon"], "--holdout-end 'soon' is not a date"),
        (["--calibration-end", "2024-09-30", "--time-unit", "months"], "--time-unit must be days or weeks"),
    ],
)
def test_bad_arguments_are_one_clear_line_and_a_non_zero_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    log = _small_log(tmp_path / "purchases.csv")
    if "--transactions" not in args:
        args = ["--transactions", str(log), *args]

    code, stdout, stderr = _fit(*args)

    assert code == 2
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stdout + stderr


def test_missing_column_and_bad_values_are_named(tmp_path: Path) -> None:
    no_amount = tmp_path / "no_amount.csv"
    no_amount.write_text("customer_id,date\nA,2024-01-01\n")
    bad_date = tmp_path / "bad_date.csv"
    bad_date.write_text("customer_id,date,amount\nA,2024-01-01,3\nA,yesterday,4\n")
    thin = tmp_path / "thin.csv"
    thin.write_text("customer_id,date,amount\nA,2024-01-01,3\nA,2024-02-01,4\nB,2024-01-05,9\n")

    for path, message in [
        (no_amount, "lack column(s) amount"),
        (bad_date, "column 'date' has values that are not dates"),
        (thin, "needs at least 2 repeat buyers, found 1"),
    ]:
        code, stdout, stderr = _fit("--transactions", str(path), "--calibration-end", "2024-06-30")

        assert code == 2, stdout
        assert f"{path}: " in stderr and message in stderr
        assert "Traceback" not in stdout + stderr


def _online_retail_log(online_retail: Path, path: Path) -> Path:
    invoices = pd.read_csv(online_retail / "online_retail_invoices.csv")
    log = pd.DataFrame(
        {"customer_id": invoices["CustomerID"], "date": invoices["InvoiceDate"], "amount": invoices["TotalPrice"]}
    )
    log.to_csv(path, index=False)
    return path


def test_online_retail_fit_is_sane_and_forecasts_the_holdout(online_retail: Path, tmp_path: Path) -> None:
    log = _online_retail_log(online_retail, tmp_path / "online_retail.csv")
    assert pd.read_csv(log)["customer_id"].nunique() == 4338

    code, stdout, stderr = _fit(
        "--transactions", str(log), "--calibration-end", "2011-09-09", "--holdout-end", "2011-12-09", "--json"
    )

    assert code == 0, stderr
    report = json.loads(stdout)
    print(f"\nonline retail: {report}")
    bgnbd, spend, holdout = report["bgnbd"], report["gamma_gamma"], report["holdout"]
    assert report["n_customers"] == 3370 and report["n_repeat_customers"] == 1956
    # measured: r 0.724, alpha 9.37 weeks; a -> 0 (no dropout is visible within the year: a and b are not
    # identified, only their tiny ratio is), p 2.33, q 3.35, gamma 414 (mean spend per invoice ~ 410)
    assert 0.5 < bgnbd["r"] < 1.0 and 6 < bgnbd["alpha"] < 13
    assert bgnbd["a"] / (bgnbd["a"] + bgnbd["b"]) < 0.01
    assert 1.5 < spend["p"] < 3.5 and 2.5 < spend["q"] < 4.5 and 300 < spend["gamma"] < 550
    # measured: 4,482 actual against 3,384 predicted (-24.5%). The holdout is this gift wholesaler's
    # September-December peak (November has twice the invoices of an ordinary month), which a stationary
    # model cannot know about; off-season windows forecast within 8% (next test).
    assert holdout["actual_purchases"] == 4482
    assert -0.30 < holdout["predicted_purchases"] / holdout["actual_purchases"] - 1 < 0


def test_online_retail_off_season_holdout_is_forecast_within_fifteen_percent(
    online_retail: Path, tmp_path: Path
) -> None:
    log = _online_retail_log(online_retail, tmp_path / "online_retail.csv")

    code, stdout, stderr = _fit(
        "--transactions", str(log), "--calibration-end", "2011-06-09", "--holdout-end", "2011-09-09", "--json"
    )

    assert code == 0, stderr
    holdout = json.loads(stdout)["holdout"]
    # measured: 2,904 actual against 3,124 predicted (+7.6%)
    assert abs(holdout["predicted_purchases"] / holdout["actual_purchases"] - 1) < 0.15
