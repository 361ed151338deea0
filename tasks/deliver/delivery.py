"""Deliver a shard of messages through the ledger, with bounded concurrency and a rate limit."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from uuid import UUID

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

from tasks.deliver.channels import (
    EmailMessageOut,
    OutboundMessage,
    PermanentSendError,
    QuotaExceededError,
    Sender,
    SesEmailSender,
    SmsMessageOut,
    SnsSmsSender,
    TransientSendError,
    cost,
)
from tasks.kernel import progress
from tasks.kernel.aws import dynamodb_client, ses_client, sns_client
from tasks.kernel.enums import Channel, DeliveryOutcome, MessageKind, SendStatus
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.ledger.backend import open_ledger
from tasks.ledger.protocol import Claim, Ledger
from tasks.plan.gates import delivery_rules, quiet_now


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

    message: OutboundMessage
    claim: Claim


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter for transient failures; throttling waits longer."""

    attempts: int = 5  # tries per message, the first included
    base: float = 0.2
    cap: float = 5.0

    def delay(self, attempt: int, throttled: bool) -> float:
        ceiling = min(self.cap, self.base * (2 ** (attempt + (1 if throttled else 0))))
        return random.uniform(0, ceiling)


@dataclass(frozen=True)
class Outcome:
    """What happened to one message: no address, no text, only ids and codes."""

    key: str
    customer_id: str
    channel: str
    outcome: DeliveryOutcome
    attempts: int
    provider_id: str | None = None
    reason: str | None = None


# Messages between two looks at the kill switch.
SWITCH_EVERY = 200


def deliver(
    batch: Sequence[Outgoing],
    ledger: Ledger,
    channel: Sender,
    bucket: TokenBucket,
    concurrency: int,
    backoff: Backoff = Backoff(),
    stopped: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome]:
    """Claim, send and mark every message; return one outcome per message.

    Outcomes: ``sent``; ``already_sent`` (the ledger had the key: nothing sent); ``unknown`` (a crash
    left the key claimed past its lease: marketing is not resent);
    ``failed`` (permanent); ``retry_later`` (still transient after every backoff:
    claim released for a later run); ``parked`` (the channel's daily quota ran out,
    or its kill switch is on: not attempted, claim released).
    """
    parked = threading.Event()
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send") as pool:
        for start in range(0, len(batch), SWITCH_EVERY):
            if stopped():
                parked.set()
            chunk = batch[start : start + SWITCH_EVERY]
            for outcome in pool.map(
                lambda item: _deliver_one(item, ledger, channel, bucket, parked, backoff, sleep), chunk
            ):
                outcomes.append(outcome)
                progress.advance("send", 1)
    return outcomes


def _deliver_one(
    item: Outgoing,
    ledger: Ledger,
    channel: Sender,
    bucket: TokenBucket,
    parked: threading.Event,
    backoff: Backoff,
    sleep: Callable[[float], None],
) -> Outcome:
    claim = item.claim

    def outcome(
        name: DeliveryOutcome, attempts: int, provider_id: str | None = None, reason: str | None = None
    ) -> Outcome:
        return Outcome(claim.key, claim.customer_id, claim.channel, name, attempts, provider_id, reason)

    if parked.is_set():
        return outcome(DeliveryOutcome.PARKED, 0)
    # take the rate token before the claim, so a crash leaves few claims between claim and send
    bucket.acquire(cost(item.message))
    if not ledger.claim(claim):
        # UNKNOWN: a crash left it claimed past the lease; marketing is never resent
        return outcome(
            DeliveryOutcome.UNKNOWN if ledger.status(claim.key) is SendStatus.UNKNOWN else DeliveryOutcome.ALREADY_SENT,
            0,
        )
    for attempt in range(backoff.attempts):
        if parked.is_set():
            ledger.release(claim.key)
            return outcome(DeliveryOutcome.PARKED, attempt)
        if attempt:
            bucket.acquire(cost(item.message))
        try:
            provider_id = channel.send(item.message)
        except TransientSendError as exc:
            if attempt + 1 < backoff.attempts:
                sleep(backoff.delay(attempt, exc.throttled))
                continue
            ledger.release(claim.key)
            return outcome(DeliveryOutcome.RETRY_LATER, attempt + 1, reason=str(exc))
        except QuotaExceededError as exc:
            ledger.release(claim.key)
            parked.set()
            return outcome(DeliveryOutcome.PARKED, attempt + 1, reason=str(exc))
        except PermanentSendError as exc:
            ledger.mark_failed(claim.key, str(exc))
            return outcome(DeliveryOutcome.FAILED, attempt + 1, reason=str(exc))
        ledger.mark_sent(claim.key, provider_id)
        return outcome(DeliveryOutcome.SENT, attempt + 1, provider_id=provider_id)
    raise AssertionError("unreachable: the loop returns on its last attempt")


def tally(outcomes: Sequence[Outcome]) -> Counter[str]:
    """Count outcomes by name."""
    return Counter(o.outcome for o in outcomes)


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
        message: OutboundMessage
        if row["channel"] == Channel.SMS.value:
            message = SmsMessageOut(
                key=str(row["idempotency_key"]),
                to_phone=str(row["to_address"]),
                text=str(row["text"]),
                kind=kind,
                opt_out_url=str(row["unsubscribe_url"]),
            )
        else:
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


def open_channel(name: str, settings: Settings) -> tuple[Sender, TokenBucket]:
    """Return the provider channel for a channel name and this process's token bucket for it."""
    if name == Channel.SMS.value:
        sms = SnsSmsSender(sns_client(settings), settings.sms_sender_id, settings.sms_max_parts)
        return sms, process_bucket(sms.name, settings.sms_rate)  # tokens are SMS parts
    email = SesEmailSender(ses_client(settings), settings.sender, settings.ses_configuration_set)
    return email, process_bucket(email.name, settings.email_rate)


def channel_paused(channel: str, settings: Settings) -> bool:
    """Return whether an operator stopped a channel: the setting, or the Prefect Variable ``paused_channels``.

    The Variable (a list of channel names, or a comma-separated string) can be set in the UI during a run;
    delivery looks at it between batches.
    """
    if channel in settings.paused_channels:
        return True
    try:
        value = Variable.get(PAUSED_VARIABLE, default=None)
    except Exception:
        return False
    names: list[object] = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return channel in {str(n).strip() for n in names}


PAUSED_VARIABLE = "paused_channels"

_SENT_SO_FAR: Counter[str] = Counter()
_SENT_LOCK = threading.Lock()


def _report_progress(artifact_id: str | None, done: int, total: int) -> None:
    """Move the run's progress artifact by ``done`` messages (shards run in threads of one process)."""
    if artifact_id is None or total == 0:
        return
    with _SENT_LOCK:
        _SENT_SO_FAR[artifact_id] += done
        share = min(100.0, 100.0 * _SENT_SO_FAR[artifact_id] / total)
    update_progress_artifact(artifact_id=UUID(artifact_id), progress=share)


@task(cache_policy=NO_CACHE)
def deliver_shard(
    paths: RunPaths,
    shard: int,
    settings: Settings,
    run_id: str,
    progress_artifact: str | None = None,
    total: int = 0,
    moment: datetime | None = None,
) -> dict[str, int]:
    """Send one rendered shard through the ledger, channel by channel; write per-message outcomes; return counts.

    ``moment`` is when the shard goes out (default: now). A message whose customer is inside their
    quiet hours then (a run that started late, a backfill at night) is held, unclaimed: it stays
    unsent for a later run, never goes out at night. Transactional email is the exception: it goes.
    """
    rendered = pd.read_parquet(paths.rendered_shard(shard))
    quiet = quiet_now(moment or datetime.now(UTC), rendered["timezone"], rendered["country"], delivery_rules(settings))
    # transactional email (where is my order) goes at any hour; SMS copies and marketing wait
    quiet &= ~(
        (rendered["kind"] == MessageKind.TRANSACTIONAL.value) & (rendered["channel"] == Channel.EMAIL.value)
    ).to_numpy()
    outcomes: list[Outcome] = [
        Outcome(str(key), str(customer), str(channel), DeliveryOutcome.HELD_QUIET_HOURS, 0)
        for key, customer, channel in rendered.loc[quiet, ["idempotency_key", "customer_id", "channel"]].itertuples(
            index=False
        )
    ]
    rendered = rendered.loc[~quiet]
    ledger = open_ledger(settings, dynamodb_client)
    try:
        for name, rows in rendered.groupby("channel", sort=True):
            channel, bucket = open_channel(str(name), settings)
            items = outgoing_from_rendered(rows, settings, run_id)
            for start in range(0, len(items), PROGRESS_EVERY):
                chunk = items[start : start + PROGRESS_EVERY]
                outcomes += deliver(
                    chunk,
                    ledger,
                    channel,
                    bucket,
                    settings.send_concurrency,
                    stopped=partial(channel_paused, channel.name, settings),
                )
                _report_progress(progress_artifact, len(chunk), total)
    finally:
        ledger.close()
    target = paths.delivery_shard(shard)
    target.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([asdict(o) for o in outcomes], columns=list(Outcome.__dataclass_fields__)).to_parquet(
        target, index=False
    )
    counts = tally(outcomes)
    get_run_logger().info("shard %d: %s", shard, dict(counts))
    return dict(counts)


# Messages between two moves of the progress artifact.
PROGRESS_EVERY = 1000
