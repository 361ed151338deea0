"""What every state backend keeps, as protocols both backends implement (SQLite and DynamoDB).

* ``SuppressionStore`` - suppressed address hashes per channel, customers suppressed by id (per channel or
  every channel, ``ALL_CHANNELS``; per topic or the whole channel, ``WHOLE_CHANNEL``), and the address hashes
  each customer was messaged at, so an unsubscribe by id also covers the address after a re-import. It
  stores hashes only: ``tasks/consent/suppression.py`` hashes and is what the engine calls.
* ``HistoryStore`` - one row per message a committed plan sends or holds out, on the day it goes out;
  rows belong to a plan (``plan_id``): recording a plan again replaces all its earlier rows.
* ``CouponStore`` - every coupon code issued, with its customer, campaign, discount and validity.
* ``WatermarkStore`` - named marks (the order updates' watermark) that never move backwards: a write
  whose ``order`` is below the stored one is refused, so two hosts cannot undo each other's progress.

Every store can ``forget_customer``: erase the customer's id from what it keeps (``loyalty forget``).
Reads used on the send path are one query per call, never one per customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from tasks.state.calls import CallStore
from tasks.state.preferences import PreferenceStore
from tasks.state.surveys import SurveyStore

# Stored in place of a channel for a suppression that covers every channel, and of a topic for ``Topic.ALL``.
ALL_CHANNELS = "*"
WHOLE_CHANNEL = ""


@dataclass(frozen=True)
class HistoryRow:
    """One message a plan sends or holds out, on the day it goes out."""

    customer_id: str
    campaign: str
    step: int
    occurrence: str
    kind: str
    decision: str
    day: date


@dataclass(frozen=True)
class CouponRow:
    """One coupon code issued (the registry the shop's checkout imports, kept for every host)."""

    code: str
    customer_id: str
    campaign: str
    step: int
    occurrence: str
    percent_off: float
    valid_from: str
    valid_until: str
    issued: date


class SuppressionStore(Protocol):
    """Suppressions and messaged addresses, as hashes and customer ids."""

    def add_addresses(self, channel: str, hashes: Sequence[str], reason: str, at: str) -> int:
        """Suppress address hashes on a channel (the first reason is kept); return how many are new."""

    def add_customer(self, channel: str, customer_id: str, topic: str, reason: str, at: str) -> bool:
        """Suppress a customer on a channel (or ``ALL_CHANNELS``) for a topic (or ``WHOLE_CHANNEL``); True if new."""

    def remember(self, channel: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Record the (customer id, address hash) pairs messaged on a channel."""

    def hashes(self, channel: str, topics: Sequence[str]) -> frozenset[str]:
        """Hashes suppressed on a channel: the addresses', and those messaged to customers suppressed for ``topics``."""

    def customers(self, channel: str, topics: Sequence[str]) -> frozenset[str]:
        """Customers suppressed on the channel (or every channel) for one of ``topics``."""

    def address_reason(self, channel: str, hashes: Sequence[str]) -> str | None:
        """Why one of the hashes (forms of one address) is suppressed on a channel; None if none is."""

    def customer_reason(self, channel: str, customer_id: str, topics: Sequence[str]) -> str | None:
        """Why a customer is suppressed on a channel for one of ``topics`` (the earliest); None if not."""

    def forget_customer(self, customer_id: str) -> tuple[dict[str, frozenset[str]], int]:
        """Erase the customer's id: return the hashes they were messaged at per channel, and rows erased."""


class HistoryStore(Protocol):
    """What committed plans sent or held out, by send day."""

    def record_plan(self, plan_id: str, rows: Sequence[HistoryRow]) -> None:
        """Replace everything recorded for ``plan_id`` with ``rows``."""

    def drop_plan(self, plan_id: str) -> None:
        """Forget a plan that will not be sent (withdrawn)."""

    def read(self, first: date, last: date, exclude: str | None = None) -> list[HistoryRow]:
        """Rows with ``first <= day <= last``, but for the plan ``exclude`` (the one being made again)."""

    def forget_customer(self, customer_id: str) -> int:
        """Erase the customer's rows; return how many."""


class CouponStore(Protocol):
    """Every coupon code issued."""

    def record(self, rows: Sequence[CouponRow]) -> None:
        """Record codes (a code recorded again is overwritten)."""

    def codes(self, first: date, last: date) -> list[CouponRow]:
        """Codes issued from ``first`` to ``last``."""

    def forget_customer(self, customer_id: str) -> int:
        """Blank the customer's id on their codes (the codes stay: an order may still carry one)."""


class WatermarkStore(Protocol):
    """Named marks that never move backwards."""

    def read_mark(self, name: str) -> str | None:
        """The mark's stored text; None before the first write."""

    def write_mark(self, name: str, text: str, order: str) -> bool:
        """Store ``text`` unless the stored mark's ``order`` is later; return whether it was stored."""


@dataclass(frozen=True)
class State:
    """The stores of one backend."""

    suppressions: SuppressionStore
    history: HistoryStore
    coupons: CouponStore
    watermarks: WatermarkStore
    calls: CallStore
    surveys: SurveyStore
    preferences: PreferenceStore
