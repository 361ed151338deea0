"""RFM: recency, frequency and monetary scores 1-5, and the standard named RFM segments.

Scores rank buyers against each other (quintiles) unless the shop sets its own cut
points. Ties share the lower score, so the many one-order customers all get F = 1
rather than being spread over scores by row order. Customers who never bought get
scores of 0 and the segment ``no_purchase``: never a made-up rank.

The named segments follow the widely used R x F grid (Putler, Kaggle "RFM analysis"):

====  =================================
R F   segment
====  =================================
5 4-5 champions
3-4 4-5 loyal
4-5 2-3 potential_loyalist
5 1   new
4 1   promising
3 3   need_attention
3 1-2 about_to_sleep
1-2 3-4 at_risk
1-2 5 cant_lose
2 1-2, 1 2 hibernating
1 1   lost
====  =================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

RFM_SEGMENTS = (
    "champions",
    "loyal",
    "potential_loyalist",
    "new",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
)
NO_PURCHASE = "no_purchase"


def _grid() -> np.ndarray:
    """Segment name for every (R, F) from (1, 1) to (5, 5); index [r - 1, f - 1]."""
    grid = np.empty((5, 5), dtype=object)
    for r in range(1, 6):
        for f in range(1, 6):
            grid[r - 1, f - 1] = _segment(r, f)
    return grid


def _segment(r: int, f: int) -> str:
    if r == 5 and f >= 4:
        return "champions"
    if r >= 3 and f >= 4:
        return "loyal"
    if r >= 4 and f in (2, 3):
        return "potential_loyalist"
    if r == 5 and f == 1:
        return "new"
    if r == 4 and f == 1:
        return "promising"
    if r == 3 and f == 3:
        return "need_attention"
    if r == 3:
        return "about_to_sleep"
    if f == 5:
        return "cant_lose"
    if f >= 3:
        return "at_risk"
    if r == 1 and f == 1:
        return "lost"
    return "hibernating"


_GRID = _grid()


def score(values: pd.Series, edges: Sequence[float] | None = None, higher_is_better: bool = True) -> pd.Series:
    """Score values 1-5: by quintile of rank (ties share the lower score), or by the shop's four cut points.

    With ``edges`` (ascending, four numbers) a value scores 1 + the number of edges it is at or above
    (at or below, when lower is better). Missing values score 0.
    """
    present = values.notna()
    out = pd.Series(0, index=values.index, dtype="int64")
    if not present.any():
        return out
    known = values[present].astype(float)
    if edges is not None:
        cuts = np.asarray(sorted(edges), dtype=float)
        if cuts.size != 4:
            raise ValueError("RFM cut points must be four ascending numbers")
        above = (known.to_numpy()[:, None] >= cuts[None, :]).sum(axis=1)
        below = (known.to_numpy()[:, None] <= cuts[None, :]).sum(axis=1)
        out[present] = 1 + (above if higher_is_better else below)
        return out
    ranked = (known if higher_is_better else -known).rank(method="min", pct=True)
    # the lowest share of a tie group decides: ceil(pct * 5) on the group's first rank
    out[present] = np.clip(np.ceil(ranked.to_numpy() * 5 - 1e-9), 1, 5).astype("int64")
    return out


def rfm_segment(r_score: pd.Series, f_score: pd.Series) -> pd.Series:
    """Name the RFM segment of each (R, F) pair; customers scored 0 (no purchase) are ``no_purchase``."""
    r = r_score.to_numpy(dtype=int)
    f = f_score.to_numpy(dtype=int)
    bought = (r > 0) & (f > 0)
    names = np.full(len(r), NO_PURCHASE, dtype=object)
    names[bought] = _GRID[r[bought] - 1, f[bought] - 1]
    return pd.Series(names, index=r_score.index, dtype="string")
