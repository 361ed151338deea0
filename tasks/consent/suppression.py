"""The suppression list: who must never be messaged again (bounce, complaint, unsubscribe, opt-out).

Two kinds of entry, both permanent and both idempotent to add (the first reason is kept):

* address suppressions - a hash of an email address or E.164 phone on one channel, from
  provider feedback (hard bounces, complaints, SMS opt-outs); no raw address is stored. They
  stop everything on the channel (``Topic.ALL``): the address is dead or its owner wants nothing;
* customer suppressions - a customer id on one channel, or on every channel, with the topic it
  stops (``Topic``): ``marketing`` (an unsubscribe from offers: order and service messages go on)
  or ``all``, from signed unsubscribe links and operators.

``all`` is stored as an empty topic: every row written before links carried a topic has one, and
each of those came from a whole-channel link, so the old rows keep their meaning with no migration.
A query for a topic counts ``all`` too: ``customers(channel, Topic.MARKETING)`` are those who get
no marketing, ``customers(channel)`` those who get nothing at all.

A complaint is recorded against the complained-about email address only: feedback carries
no customer id, a hash cannot be linked to the customer's phone, and consent is given per
channel. An operator who wants a customer silenced everywhere adds a customer suppression
with ``channel=None``.

Where it is kept is the state backend's business (``tasks/state``): SQLite in the state folder on one
host, DynamoDB for several; ``SuppressionList.for_settings`` opens the one the settings choose.

Address hashes are keyed: HMAC-SHA256 of the normalised address (an email in its ASCII form,
``tasks/kernel/addresses``, lower-cased; a phone trimmed) under a key derived from the signing secret
for the purpose ``address-hash`` (``Purpose.ADDRESS_HASH``), so a stored hash cannot be checked against a list of known
addresses. Rows stored before were a bare SHA-256: they are not migrated (nobody can turn a hash back
into its address) but matched, since every check computes both forms (``address_forms``) and asks
for either. A list opened without a key (``SuppressionList(path)``: tests, tools) writes the bare form.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from tasks.consent.tokens import Purpose, verification_keys
from tasks.kernel.addresses import ascii_address
from tasks.kernel.enums import Channel, Topic
from tasks.kernel.settings import Settings
from tasks.state.backend import open_suppressions
from tasks.state.protocol import ALL_CHANNELS as _ALL_CHANNELS
from tasks.state.protocol import WHOLE_CHANNEL as _WHOLE_CHANNEL
from tasks.state.protocol import SuppressionStore
from tasks.state.sqlite import SUPPRESSIONS_FILE, SqliteSuppressions

__all__ = ["SUPPRESSIONS_FILE", "SuppressionList", "SuppressionReason", "address_forms", "address_hash"]


class SuppressionReason(StrEnum):
    """Why someone is suppressed."""

    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"
    SMS_OPT_OUT = "sms_opt_out"
    FORGOTTEN = "forgotten"
    CALL_NO_CONTACT = "call_no_contact"  # told support on a call they want no contact (``loyalty calls record``)


def bare_address_hash(address: str) -> str:
    """The unkeyed SHA-256 every row stored before keyed hashes holds (matched, never written with a key)."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def _normalised(address: str) -> str:
    text = address.strip()
    if "@" in text:
        text = ascii_address(text) or text
    return text.lower()


def address_hash(address: str, key: bytes | None = None) -> str:
    """Return the stored hash of an address: keyed HMAC-SHA256 of its normal form (no key: the bare form)."""
    if key is None:
        return bare_address_hash(address)
    return hmac.new(key, _normalised(address).encode(), hashlib.sha256).hexdigest()


def address_forms(address: str, key: bytes | None, old_keys: tuple[bytes, ...] = ()) -> tuple[str, ...]:
    """Every hash an address may be stored under: keyed (the current key's, then the keys of earlier signing
    secrets, so a rotation suppresses nobody less), and the bare one of rows stored before keys."""
    keys = ([] if key is None else [key]) + list(old_keys)
    return (*(address_hash(address, k) for k in keys), bare_address_hash(address))


class SuppressionList:
    """Suppressed addresses and customers per channel, on the state backend; addresses hashed with ``key``."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        store: SuppressionStore | None = None,
        key: bytes | None = None,
        old_keys: tuple[bytes, ...] = (),
    ) -> None:
        if store is None:
            if path is None:
                raise ValueError("give the SQLite file or a store")
            store = SqliteSuppressions(path)
        self._store = store
        self.key = key
        self.old_keys = old_keys

    @classmethod
    def for_settings(cls, settings: Settings) -> SuppressionList:
        """Open the suppression list on the backend the settings choose, hashing with the shop's address key."""
        keys = verification_keys(settings, Purpose.ADDRESS_HASH)
        return cls(store=open_suppressions(settings), key=keys[0], old_keys=keys[1:])

    def hash(self, address: str) -> str:
        """The hash this list stores an address under."""
        return address_hash(address, self.key)

    def _hash_normal(self, address: str) -> str:
        """``hash`` of an address already in its normal form (``ascii_address`` gives it back as it is)."""
        if self.key is None:
            return bare_address_hash(address)
        return hmac.new(self.key, address.strip().lower().encode(), hashlib.sha256).hexdigest()

    def forms(self, address: str) -> tuple[str, ...]:
        """Every hash this list may hold an address under (keyed, and bare for older rows)."""
        return address_forms(address, self.key, self.old_keys)

    def add(self, channel: Channel, address: str, reason: SuppressionReason | str) -> bool:
        """Suppress an address on a channel; the first reason is kept. Return whether it is new."""
        where, why = Channel(channel).value, SuppressionReason(reason).value
        if self._store.address_reason(where, self.forms(address)) is not None:
            return False
        return self._store.add_addresses(where, [self.hash(address)], why, _now()) == 1

    def add_many(self, channel: Channel, addresses: Iterable[str], reason: SuppressionReason | str) -> int:
        """Suppress many addresses on a channel at once; return how many are new."""
        where, why = Channel(channel).value, SuppressionReason(reason).value
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            return 0
        stored = self._store.hashes(where, (_WHOLE_CHANNEL,))
        new = list(dict.fromkeys(self.hash(a) for a in wanted if stored.isdisjoint(self.forms(a))))
        return self._store.add_addresses(where, new, why, _now())

    def add_customer(
        self,
        channel: Channel | None,
        customer_id: str,
        reason: SuppressionReason | str,
        topic: str | None = None,
    ) -> bool:
        """Suppress a customer on a channel (``None``: every channel) for a topic (``None``: ``Topic.ALL``).

        The first reason is kept. Return whether the entry is new.
        """
        stored_channel = _ALL_CHANNELS if channel is None else Channel(channel).value
        if topic == _WHOLE_CHANNEL:
            raise ValueError("a topic must not be empty: pass None or Topic.ALL to suppress the whole channel")
        stored_topic = _WHOLE_CHANNEL if topic is None or topic == Topic.ALL else topic
        why = SuppressionReason(reason).value
        return self._store.add_customer(stored_channel, customer_id, stored_topic, why, _now())

    def remember(
        self, channel: Channel, customers_and_addresses: Iterable[tuple[str, str]], *, normal_form: bool = False
    ) -> None:
        """Record the addresses customers are messaged at (hashed), for unsubscribes by customer id.

        ``normal_form``: the addresses are already the form the engine sends to (a snapshot's, ``normalise_email``:
        the ASCII form of an email, E.164 of a phone), so they are hashed without being validated again.
        """
        hashed = self._hash_normal if normal_form else self.hash
        pairs = [(str(c), hashed(a)) for c, a in customers_and_addresses if isinstance(a, str) and a.strip()]
        if pairs:
            self._store.remember(Channel(channel).value, pairs)

    def hashes(self, channel: Channel, topic: str | None = None) -> frozenset[str]:
        """Return the hashes of the addresses that must not get a message of ``topic`` on a channel
        (``None``: of any topic, i.e. suppressed for ``Topic.ALL``); match an address with ``forms``.

        Address suppressions (bounces, complaints, SMS opt-outs) cover every topic.
        """
        return self._store.hashes(Channel(channel).value, _stopping(topic))

    def customers(self, channel: Channel, topic: str | None = None) -> frozenset[str]:
        """Return the customers who must not hear anything on a channel, or on one topic of it.

        Without a topic (or ``Topic.ALL``): those suppressed for ``all`` on the channel or on every
        channel. With a topic: those, plus those who unsubscribed from that topic only.
        """
        return self._store.customers(Channel(channel).value, _stopping(topic))

    def reason(self, channel: Channel, address: str) -> SuppressionReason | None:
        """Return why an address is suppressed on a channel, or None if it is not."""
        found = self._store.address_reason(Channel(channel).value, self.forms(address))
        return None if found is None else SuppressionReason(found)

    def customer_reason(self, channel: Channel, customer_id: str, topic: str | None = None) -> SuppressionReason | None:
        """Return why a customer is suppressed on a channel (or topic), or None if they are not."""
        found = self._store.customer_reason(Channel(channel).value, customer_id, _stopping(topic))
        return None if found is None else SuppressionReason(found)

    def forget(self, customer_id: str, addresses: dict[Channel, Iterable[str]]) -> int:
        """Erase a customer's id from the list and suppress their addresses (given, and those they were messaged
        at) on every channel they belong to, for good; return how many rows held their id."""
        messaged, erased = self._store.forget_customer(customer_id)
        at = _now()
        for channel in Channel:
            hashes = set(messaged.get(channel.value, ())) | {self.hash(a) for a in addresses.get(channel, ())}
            self._store.add_addresses(channel.value, sorted(hashes), SuppressionReason.FORGOTTEN.value, at)
        return erased


def _stopping(topic: str | None) -> tuple[str, ...]:
    """The stored topics whose suppressions stop a message of ``topic`` (``None``: ``Topic.ALL``)."""
    return (_WHOLE_CHANNEL,) if topic is None or topic == Topic.ALL else (_WHOLE_CHANNEL, topic)


def _now() -> str:
    return datetime.now(UTC).isoformat()
