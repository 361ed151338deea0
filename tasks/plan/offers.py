"""Offers: personal coupon codes nobody can guess, their validity, the registry the shop imports, redemptions.

A code is ``PREFIX-`` and ten base32 characters of an HMAC (the run's signing key) over campaign,
prefix, customer and occurrence: the same code on every step, channel and re-run of one occurrence,
a different one for the next occurrence, and 50 bits nobody can derive without the key. The
registry (``<run>/offers/coupons.csv``) lists every code a day's plan sends, with its discount and
validity; the shop's checkout imports it. The state backend keeps every code too (``coupon_rows``), for
every host. Orders carrying a code (an optional ``coupon_code``
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
from tasks.state.protocol import CouponRow

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


def validity(campaign: Campaign, offer: Offer, occurrence: date, sent_on: date | None = None) -> tuple[date, date]:
    """Return (valid_from, valid_until), both inclusive, of an offer's coupon for one occurrence.

    ``sent_on``: the day a message carrying it really goes out. A coupon with ``valid_days`` is valid at
    least that many days after it (a deferred or late step is not sent with a code about to lapse); one
    fixed by its occasion (``valid_days: 0``) is not, and may be expired on that day (``expired_on_send``).
    """
    first, last = campaign.offer_window(offer)
    valid_from, valid_until = occurrence + timedelta(days=first), occurrence + timedelta(days=last)
    if sent_on is not None and offer.valid_days > 0:
        valid_until = max(valid_until, sent_on + timedelta(days=offer.valid_days))
    return valid_from, valid_until


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
    """Return one registry row per distinct code among the plan rows to send (every channel shares it).

    Rows carrying no coupon (``coupon_valid_until`` empty: a service message to someone who does not
    accept offers) have none; the validity is the plan's, counted from the day the message goes out.
    """
    codes = step_codes(sends, campaigns, key)
    if "coupon_valid_until" in sends.columns:
        codes = codes.where(sends["coupon_valid_until"].notna())
    rows = sends.assign(code=codes).dropna(subset=["code"])
    if "coupon_valid_until" in rows.columns:
        rows = rows.sort_values("coupon_valid_until", kind="stable")
    rows = rows.drop_duplicates("code", keep="last")
    out = []
    for record in rows.to_dict("records"):
        campaign = campaigns[str(record["campaign"])]
        step = next(s for s in campaign.steps if s.step == int(str(record["step"])))
        offer = campaign.step_offer(step)
        assert offer is not None  # rows without an offer have no code
        valid_from, valid_until = validity(campaign, offer, date.fromisoformat(str(record["occurrence"])))
        if record.get("coupon_valid_until") is not None:
            valid_until = date.fromisoformat(str(record["coupon_valid_until"]))
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


def coupon_rows(frame: pd.DataFrame, issued: date) -> list[CouponRow]:
    """The registry's rows as the state backend keeps them (every code any host issued), issued on ``issued``."""
    return [
        CouponRow(
            code=str(r["code"]),
            customer_id=str(r["customer_id"]),
            campaign=str(r["campaign"]),
            step=int(r["step"]),
            occurrence=str(r["occurrence"]),
            percent_off=float(r["percent_off"]),
            valid_from=str(r["valid_from"]),
            valid_until=str(r["valid_until"]),
            issued=issued,
        )
        for r in frame.to_dict("records")
    ]


def redeemed_codes(orders: pd.DataFrame) -> frozenset[str]:
    """Codes used on orders (the optional ``coupon_code`` column), case and blanks normalised."""
    if "coupon_code" not in orders.columns:
        return frozenset()
    used = orders["coupon_code"].dropna().astype(str).str.strip().str.upper()
    return frozenset(used.loc[used != ""])
