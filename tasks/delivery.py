"""Deliver a shard of messages through the ledger, with bounded concurrency and a rate limit."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks import progress
from tasks.aws import ses_client
from tasks.channels import (
    Channel,
    EmailMessageOut,
    PermanentSendError,
    QuotaExceededError,
    SesEmailChannel,
    TransientSendError,
)
from tasks.enums import MessageKind
from tasks.ledger import Claim, Ledger, SqliteLedger
from tasks.paths import RunPaths
from tasks.settings import Settings


class TokenBucket:
    """Allow ``rate`` acquisitions per second on average, bursts up to ``capacity``."""

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        self._rate = rate
        self._capacity = capacity if capacity is not None else max(1.0, rate)
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, tokens: float = 1.0) -> None:
        """Block until ``tokens`` are available, then take them."""
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                if self._tokens >= tokens:
                    self._tokens -= tokens
                    return
                wait = (tokens - self._tokens) / self._rate
            time.sleep(wait)


@dataclass(frozen=True)
class Outgoing:
    """A message with what the ledger records about it."""

    message: EmailMessageOut
    claim: Claim


def deliver(
    batch: Sequence[Outgoing], ledger: Ledger, channel: Channel, bucket: TokenBucket, concurrency: int
) -> Counter[str]:
    """Claim, send and mark every message; return counts per outcome.

    Outcomes: ``sent``; ``already_sent`` (the ledger had the key: nothing sent);
    ``failed`` (permanent); ``retry_later`` (transient: claim released);
    ``parked`` (the channel's quota ran out: not attempted).
    """
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    parked = threading.Event()

    def one(item: Outgoing) -> None:
        outcome = _deliver_one(item, ledger, channel, bucket, parked)
        with lock:
            counts[outcome] += 1
        progress.advance("send", 1)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send") as pool:
        list(pool.map(one, batch))
    return counts


def _deliver_one(item: Outgoing, ledger: Ledger, channel: Channel, bucket: TokenBucket, parked: threading.Event) -> str:
    if parked.is_set():
        return "parked"
    if not ledger.claim(item.claim):
        return "already_sent"
    bucket.acquire()
    try:
        provider_id = channel.send(item.message)
    except TransientSendError:
        ledger.release(item.claim.key)
        return "retry_later"
    except QuotaExceededError:
        ledger.release(item.claim.key)
        parked.set()
        return "parked"
    except PermanentSendError as exc:
        ledger.mark_failed(item.claim.key, str(exc))
        return "failed"
    ledger.mark_sent(item.claim.key, provider_id)
    return "sent"


_BUCKETS: dict[tuple[str, float], TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def process_bucket(channel: str, rate: float) -> TokenBucket:
    """Return the one token bucket of this process for a channel, shared by all shards."""
    with _BUCKETS_LOCK:
        return _BUCKETS.setdefault((channel, rate), TokenBucket(rate))


def outgoing_from_rendered(rendered: pd.DataFrame, settings: Settings, run_id: str) -> list[Outgoing]:
    """Turn rendered rows into messages with their ledger claims."""
    items = []
    for row in rendered.to_dict("records"):
        kind = MessageKind(str(row["kind"]))
        message = EmailMessageOut(
            key=str(row["idempotency_key"]),
            to_address=str(row["to_address"]),
            to_name=None if row["to_name"] is None else str(row["to_name"]),
            subject=str(row["subject"]),
            html=str(row["html"]),
            text=str(row["text"]),
            kind=kind,
            unsubscribe_url=str(row["unsubscribe_url"]),
            unsubscribe_mailto=settings.unsubscribe_mailto,
        )
        claim = Claim(
            key=message.key,
            campaign=str(row["campaign"]),
            channel=str(row["channel"]),
            customer_id=str(row["customer_id"]),
            kind=kind.value,
            run_id=run_id,
        )
        items.append(Outgoing(message=message, claim=claim))
    return items


@task(cache_policy=NO_CACHE)
def deliver_shard(paths: RunPaths, shard: int, settings: Settings, run_id: str) -> dict[str, int]:
    """Send one rendered shard by email through the ledger; return counts per outcome."""
    rendered = pd.read_parquet(paths.rendered_shard(shard))
    ledger = SqliteLedger(settings.state_dir / "ledger.sqlite")
    try:
        channel = SesEmailChannel(ses_client(settings), settings.sender, settings.ses_configuration_set)
        counts = deliver(
            outgoing_from_rendered(rendered, settings, run_id),
            ledger,
            channel,
            process_bucket("email", settings.email_rate),
            settings.send_concurrency,
        )
    finally:
        ledger.close()
    get_run_logger().info("shard %d: %s", shard, dict(counts))
    return dict(counts)
