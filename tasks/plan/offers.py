"""Offers: personal coupon codes nobody can guess, their validity, the registry the shop imports, redemptions.

A code is ``PREFIX-`` and ten base32 characters of an HMAC (the run's signing key) over campaign,
prefix, customer and occurrence: the same code on every step, channel and re-run of one occurrence,
a different one for the next occurrence, and 50 bits nobody can derive without the key. The
registry (``<run>/offers/coupons.csv``) lists every code a day's plan sends, with its discount and
validity; the shop's checkout imports it. Orders carrying a code (an optional ``coupon_code``
column) are redemptions: they stop a series (``stop_when_redeemed``) and feed attribution.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from tasks.plan.campaigns import Campaign, Offer

REGISTRY_COLUMNS = (
    "code",
    "customer_id",
    "campaign",
    "step",
    "occurrence",
    "percent_off",
    "valid_from",
    "valid_until",
)


def coupon_code(key: bytes, campaign: str, offer: Offer, customer_id: str, occurrence: str) -> str:
    """Return the customer's code for one occurrence of a campaign's offer."""
    message = "\x1f".join(("coupon", campaign, offer.coupon_prefix, customer_id, occurrence)).encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return f"{offer.coupon_prefix}-{base64.b32encode(digest[:10]).decode()[:10]}"


def validity(campaign: Campaign, offer: Offer, occurrence: date) -> tuple[date, date]:
    """Return (valid_from, valid_until), both inclusive, of an offer's coupon for one occurrence."""
    first, last = campaign.offer_window(offer)
    return occurrence + timedelta(days=first), occurrence + timedelta(days=last)


def step_codes(plan: pd.DataFrame, campaigns: dict[str, Campaign], key: bytes) -> pd.Series:
    """Return the coupon code each plan row carries (missing for rows of steps without an offer)."""
    codes = pd.Series(pd.NA, index=plan.index, dtype=object)
    for (name, number), rows in plan.groupby(["campaign", "step"], sort=False):
        campaign = campaigns[str(name)]
        offer = campaign.step_offer(next(s for s in campaign.steps if s.step == int(str(number))))
        if offer is None:
            continue
        codes.loc[rows.index] = [
            coupon_code(key, campaign.name, offer, str(c), str(o))
            for c, o in zip(rows["customer_id"], rows["occurrence"], strict=True)
        ]
    return codes


def registry(sends: pd.DataFrame, campaigns: dict[str, Campaign], key: bytes) -> pd.DataFrame:
    """Return one registry row per distinct code among the plan rows to send (every channel shares it)."""
    codes = step_codes(sends, campaigns, key)
    rows = sends.assign(code=codes).dropna(subset=["code"]).drop_duplicates("code")
    out = []
    for record in rows.to_dict("records"):
        campaign = campaigns[str(record["campaign"])]
        step = next(s for s in campaign.steps if s.step == int(str(record["step"])))
        offer = campaign.step_offer(step)
        assert offer is not None  # rows without an offer have no code
        valid_from, valid_until = validity(campaign, offer, date.fromisoformat(str(record["occurrence"])))
        out.append(
            {
                "code": record["code"],
                "customer_id": record["customer_id"],
                "campaign": campaign.name,
                "step": int(str(record["step"])),
                "occurrence": record["occurrence"],
                "percent_off": offer.percent_off,
                "valid_from": valid_from.isoformat(),
                "valid_until": valid_until.isoformat(),
            }
        )
    return pd.DataFrame(out, columns=list(REGISTRY_COLUMNS))


def write_registry(frame: pd.DataFrame, path: Path) -> None:
    """Write the day's coupon registry (CSV, the shop's checkout imports it); temp name, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    frame.to_csv(partial, index=False)
    partial.replace(path)


def redeemed_codes(orders: pd.DataFrame) -> frozenset[str]:
    """Codes used on orders (the optional ``coupon_code`` column), case and blanks normalised."""
    if "coupon_code" not in orders.columns:
        return frozenset()
    used = orders["coupon_code"].dropna().astype(str).str.strip().str.upper()
    return frozenset(used.loc[used != ""])
