"""KPI charts as PNG files (matplotlib, no display): the retention cohorts and the daily views."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never open a window, never need a display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def cohort_heatmap(table: pd.DataFrame, target: Path) -> Path:
    """Draw the retention-cohort table (share buying per month since the first purchase) as a heatmap."""
    shares = table.drop(columns=["customers"]).astype(float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * shares.shape[1], 1.2 + 0.35 * max(len(shares), 1)))
    later = shares.iloc[:, 1:].to_numpy()
    top = float(np.nanmax(later)) if np.isfinite(later).any() else 0.0
    # month 0 is 100% by construction: the colour scale is set by the months after it
    image = ax.imshow(
        np.ma.masked_invalid(shares.to_numpy()), cmap="YlGnBu", vmin=0, vmax=max(0.05, top), aspect="auto"
    )
    ax.set_xticks(range(shares.shape[1]), [c.removeprefix("m") for c in shares.columns])
    ax.set_yticks(range(len(shares)), [f"{c} ({n})" for c, n in zip(shares.index, table["customers"], strict=True)])
    ax.set_xlabel("months since first purchase")
    ax.set_title("Share of each first-purchase cohort buying again")
    for (row, col), value in np.ndenumerate(shares.to_numpy()):
        if not np.isnan(value) and col > 0:
            ax.text(col, row, f"{value:.0%}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.03, format=lambda v, _: f"{v:.0%}")
    return _save(fig, target)


def views_trend(per_day: pd.Series, alert: bool, target: Path) -> Path:
    """Draw daily product views with the trailing 28-day mean; the last day in red when the alert is raised."""
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(per_day.index, per_day.to_numpy(), color="#4c72b0", label="views per day")
    ax.plot(per_day.index, per_day.rolling(28, min_periods=7).mean().shift(1), color="#999999", label="28-day mean")
    ax.scatter(per_day.index[-1:], per_day.to_numpy()[-1:], color="#c44e52" if alert else "#4c72b0", zorder=3)
    ax.set_title("Product views" + (" - traffic drop" if alert else ""))
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, target)


def _save(fig: Figure, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
