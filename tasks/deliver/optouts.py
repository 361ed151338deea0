"""Opt-outs at send time: a customer who unsubscribed after the plan was made gets nothing.

A plan is made hours (a daily wave: up to 15 h) or days (an ad-hoc campaign waiting for approval:
up to 168 h) before its messages go out. Delivery reads the suppression list again right before
each chunk is claimed and drops every message whose customer id or address hash is suppressed for
the message's kind: marketing stops at ``Suppressed.marketing``, transactional at
``Suppressed.everything`` (a bounce, a complaint, a whole-channel unsubscribe).

``suppressed_now`` is the one place delivery reads the list: the list's backend may change
behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tasks.consent.suppression import SuppressionList
from tasks.deliver.channels import EmailMessageOut, OutboundMessage
from tasks.kernel.enums import Channel, MessageKind
from tasks.kernel.settings import Settings
from tasks.plan.planner import Suppressed, current_suppressions


def _no_forms(address: str) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class OptOuts:
    """Who may not be messaged now, and how an address is looked up in it (every hash it may be stored under)."""

    suppressed: Suppressed = field(default_factory=Suppressed)
    forms: Callable[[str], tuple[str, ...]] = _no_forms


def suppressed_now(settings: Settings) -> OptOuts:
    """Read who may not be messaged right now (one read for a whole chunk)."""
    suppressions = SuppressionList.for_settings(settings)
    return OptOuts(current_suppressions(suppressions), suppressions.forms)


def _address(message: OutboundMessage) -> str:
    return message.to_address if isinstance(message, EmailMessageOut) else message.to_phone


def is_suppressed(message: OutboundMessage, channel: str, customer_id: str, opt_outs: OptOuts) -> bool:
    """Whether a message's customer or address is suppressed for its kind on its channel."""
    suppressed = opt_outs.suppressed
    table = suppressed.marketing if message.kind is MessageKind.MARKETING else suppressed.everything
    stopped = table.get(Channel(channel), frozenset())
    if not stopped:
        return False
    return customer_id in stopped or not stopped.isdisjoint(opt_outs.forms(_address(message)))
