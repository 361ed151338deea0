"""Deliver a shard of messages through the ledger, with bounded concurrency and a rate limit.

Each message is claimed in the ledger, sent, then marked; its outcome is one of ``DeliveryOutcome``:

- ``sent``: the provider accepted it (``reason`` ``ledger_mark_failed`` when the ledger could not record
  it: logged loudly, never resent by this run);
- ``already_sent``: the ledger had the key (another run, host or earlier attempt): nothing sent;
- ``unknown``: nobody knows whether it went out: its answer was lost (the connection closed or the
  read timed out after the request left), or an earlier run crashed holding its claim. The entry is
  UNKNOWN: marketing is never resent; transactional is taken over and resent by a later run;
- ``failed``: refused for good (a rejected or malformed message, an address without an ASCII form,
  or any unexpected error of this one message: its reason is the error's class name only);
- ``retry_later``: still transient after every backoff, the rate tokens not had in time, or the ledger
  unreachable for the claim: the claim released for a later run;
- ``parked``: the channel's daily quota ran out, its kill switch is on or its campaign is paused
  (``paused_campaigns``): not attempted, claim released;
- ``suppressed``: the customer opted out (or bounced) after planning: dropped before the claim;
- ``held_quiet_hours``: inside the customer's quiet hours when the shard went out: not claimed.

Only what surely did not reach the provider is retried (``TransientSendError``): SES and SNS take no
idempotency token. A transactional message whose answer was lost is resent by a later run, so its
customer may get a second copy; every email carries its ledger key in ``X-Loyalty-Key`` so a
receiving side can drop it. One message's error never stops the others.
"""

from __future__ import annotations

import logging
import math
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
    UnknownOutcomeError,
    cost,
)
from tasks.deliver.optouts import OptOuts, is_suppressed, suppressed_now
from tasks.kernel import progress
from tasks.kernel.aws import dynamodb_client, ses_client, sns_client
from tasks.kernel.enums import Channel, DeliveryOutcome, MessageKind, SendStatus
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.ledger.backend import open_ledger
from tasks.ledger.protocol import Claim, Ledger
from tasks.plan.gates import delivery_rules, quiet_now
from tasks.plan.pauses import (
    NO_PAUSES,
    CampaignPauses,
    campaign_pauses,
    listed_names,
    read_variable,
    variable_reader,
)

logger = logging.getLogger("loyalty.deliver")


class TokenBucket:
    """Allow ``rate`` tokens per second on average, bursts up to ``capacity``; first come, first served.

    Each acquisition books the moment its tokens will be there (the bucket's own clock of when it is
    next empty, advanced by the cost), then sleeps until that moment: callers never race for a token,
    so none waits longer than the queue ahead of it. The capacity is at least ``largest`` (the
    largest single cost: an SMS of ``sms_max_parts`` parts), so every cost can be served; a larger
    one waits for its excess and leaves no one starved. ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        largest: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate
        self._capacity = max(capacity if capacity is not None else rate, largest, 1.0)
        self._clock, self._sleep = clock, sleep
        self._empty_at = clock()  # when the bucket has given out everything booked so far (in the past: full)
        self._lock = threading.Lock()

    @property
    def capacity(self) -> float:
        return self._capacity

    def acquire(self, tokens: float = 1.0, timeout: float = 60.0) -> bool:
        """Wait for ``tokens`` and take them; False at once (nothing taken) if they cannot be had within ``timeout`` s."""
        with self._lock:
            now = self._clock()
            empty_at = max(self._empty_at, now) + tokens / self._rate
            wait = empty_at - self._capacity / self._rate - now
            if wait > timeout:
                return False
            self._empty_at = empty_at
        if wait > 0:
            self._sleep(wait)
        return True


@dataclass(frozen=True)
class Outgoing:
    """A message with what the ledger records about it."""

    message: OutboundMessage
    claim: Claim


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter for transient failures; throttling waits longer.

    ``token_wait``: the longest one attempt waits for its rate tokens before the message is ``retry_later``.
    """

    attempts: int = 5  # tries per message, the first included
    base: float = 0.2
    cap: float = 5.0
    token_wait: float = 30.0

    def ceiling(self, attempt: int, throttled: bool) -> float:
        """The longest wait after failed attempt ``attempt`` (0-based)."""
        return min(self.cap, self.base * 2.0 ** (attempt + (1 if throttled else 0)))

    def delay(self, attempt: int, throttled: bool) -> float:
        return random.uniform(0, self.ceiling(attempt, throttled))

    def worst_case(self, connect_timeout: float, read_timeout: float) -> float:
        """The longest one message can hold its claim: every attempt waiting for tokens, connecting and reading
        to the end, and every backoff at its ceiling."""
        waits = sum(self.ceiling(attempt, throttled=True) for attempt in range(self.attempts - 1))
        return self.attempts * (self.token_wait + connect_timeout + read_timeout) + waits


# Added to the worst-case send when checking a lease: clock skew between hosts, a slow ledger write.
LEASE_MARGIN = 10.0


def shard_backoff(settings: Settings) -> Backoff:
    """The backoff a delivery shard uses: the defaults, with the settings' wait for rate tokens."""
    return Backoff(token_wait=settings.send_token_wait)


def check_lease(settings: Settings, backoff: Backoff | None = None) -> None:
    """Refuse a ledger lease shorter than the longest a send may hold its claim (``backoff``: the shard's).

    A shorter lease lets another run take a claim over (transactional: send it again) or make it
    UNKNOWN while its first sender is still waiting for the provider.
    """
    backoff = backoff or shard_backoff(settings)
    need = backoff.worst_case(settings.send_connect_timeout, settings.send_read_timeout) + LEASE_MARGIN
    if settings.ledger_lease_seconds < need:
        raise ValueError(
            f"ledger_lease_seconds={settings.ledger_lease_seconds} is shorter than the longest send may hold its "
            f"claim ({math.ceil(need)} s: {backoff.attempts} attempts x (send_token_wait {backoff.token_wait:g} s + "
            f"send_connect_timeout {settings.send_connect_timeout:g} s + send_read_timeout "
            f"{settings.send_read_timeout:g} s) + backoff + {LEASE_MARGIN:g} s margin): raise the lease to at "
            f"least {math.ceil(need)} or lower the timeouts"
        )


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


# Messages between two looks at the kill switch and the suppression list.
SWITCH_EVERY = 200


def _nothing_paused() -> frozenset[MessageKind]:
    return frozenset()


def deliver(
    batch: Sequence[Outgoing],
    ledger: Ledger,
    channel: Sender,
    bucket: TokenBucket,
    concurrency: int,
    backoff: Backoff = Backoff(),
    paused: Callable[[], frozenset[MessageKind]] = _nothing_paused,
    sleep: Callable[[float], None] = time.sleep,
    opt_outs: Callable[[], OptOuts] = OptOuts,
    campaigns: Callable[[], CampaignPauses] = CampaignPauses,
) -> list[Outcome]:
    """Claim, send and mark every message; return one outcome per message (see the module docstring).

    Every ``SWITCH_EVERY`` messages, right before their claims, delivery looks at the kill switch
    (``paused``: the kinds of message not to send now), at the campaigns paused (``campaigns``) and at
    the suppression list (``opt_outs``).
    """
    quota_out = threading.Event()
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send") as pool:
        for start in range(0, len(batch), SWITCH_EVERY):
            chunk, held = _hold_back(batch[start : start + SWITCH_EVERY], paused(), opt_outs(), campaigns())
            outcomes += held
            outcomes += pool.map(
                lambda item: _deliver_one(item, ledger, channel, bucket, quota_out, backoff, sleep), chunk
            )
            progress.advance("send", len(held) + len(chunk))
    return outcomes


def _hold_back(
    chunk: Sequence[Outgoing],
    paused: frozenset[MessageKind],
    opt_outs: OptOuts,
    campaigns: CampaignPauses = NO_PAUSES,
) -> tuple[list[Outgoing], list[Outcome]]:
    """Split a chunk into the messages to send and the outcomes of those held back: paused kinds and
    campaigns, opt-outs."""
    go: list[Outgoing] = []
    held: list[Outcome] = []
    for item in chunk:
        claim = item.claim
        if item.message.kind in paused or campaigns.stops(claim.campaign, item.message.kind):
            held.append(Outcome(claim.key, claim.customer_id, claim.channel, DeliveryOutcome.PARKED, 0))
        elif is_suppressed(item.message, claim.channel, claim.customer_id, opt_outs):
            held.append(Outcome(claim.key, claim.customer_id, claim.channel, DeliveryOutcome.SUPPRESSED, 0))
        else:
            go.append(item)
    return go, held


def _deliver_one(
    item: Outgoing,
    ledger: Ledger,
    channel: Sender,
    bucket: TokenBucket,
    quota_out: threading.Event,
    backoff: Backoff,
    sleep: Callable[[float], None],
) -> Outcome:
    """Claim one message and send it; nothing it raises reaches the other messages."""
    claim = item.claim

    def outcome(name: DeliveryOutcome, attempts: int = 0, reason: str | None = None) -> Outcome:
        return Outcome(claim.key, claim.customer_id, claim.channel, name, attempts, None, reason)

    if quota_out.is_set():
        return outcome(DeliveryOutcome.PARKED)
    # take the rate token before the claim, so a crash leaves few claims between claim and send
    if not bucket.acquire(cost(item.message), timeout=backoff.token_wait):
        return outcome(DeliveryOutcome.RETRY_LATER, reason="rate_wait")
    try:
        claimed = ledger.claim(claim)
        status = None if claimed else ledger.status(claim.key)
    except Exception as exc:  # the ledger is unreachable: nothing was sent
        logger.warning("ledger claim of %s failed (%s): retry later", claim.key, type(exc).__name__)
        _guarded(ledger.release, claim.key, run_id=claim.run_id)
        return outcome(DeliveryOutcome.RETRY_LATER, reason=f"ledger_{type(exc).__name__}")
    if not claimed:
        # UNKNOWN: a crash or a lost answer left it unknown; marketing is never resent
        return outcome(DeliveryOutcome.UNKNOWN if status is SendStatus.UNKNOWN else DeliveryOutcome.ALREADY_SENT)
    try:
        return _send_claimed(item, ledger, channel, bucket, quota_out, backoff, sleep)
    except Exception as exc:  # anything unforeseen (a header MIME refuses, a bug): this message fails alone
        reason = type(exc).__name__
        logger.error("sending %s failed with %s: marked failed", claim.key, reason)
        _guarded(ledger.mark_failed, claim.key, reason, run_id=claim.run_id)
        return outcome(DeliveryOutcome.FAILED, 1, reason)


def _send_claimed(
    item: Outgoing,
    ledger: Ledger,
    channel: Sender,
    bucket: TokenBucket,
    quota_out: threading.Event,
    backoff: Backoff,
    sleep: Callable[[float], None],
) -> Outcome:
    """Send a claimed message, retrying only what surely did not go through; mark the ledger as it ends."""
    claim = item.claim

    def outcome(
        name: DeliveryOutcome, attempts: int, provider_id: str | None = None, reason: str | None = None
    ) -> Outcome:
        return Outcome(claim.key, claim.customer_id, claim.channel, name, attempts, provider_id, reason)

    def give_back(name: DeliveryOutcome, attempts: int, reason: str | None = None) -> Outcome:
        _guarded(ledger.release, claim.key, run_id=claim.run_id)
        return outcome(name, attempts, reason=reason)

    for attempt in range(backoff.attempts):
        if quota_out.is_set():
            return give_back(DeliveryOutcome.PARKED, attempt)
        if attempt and not bucket.acquire(cost(item.message), timeout=backoff.token_wait):
            return give_back(DeliveryOutcome.RETRY_LATER, attempt, "rate_wait")
        try:
            provider_id = channel.send(item.message)
        except TransientSendError as exc:  # surely not sent: safe to try again
            if attempt + 1 < backoff.attempts:
                sleep(backoff.delay(attempt, exc.throttled))
                continue
            return give_back(DeliveryOutcome.RETRY_LATER, attempt + 1, str(exc))
        except UnknownOutcomeError as exc:  # may have gone out: never resent by this run
            _guarded(ledger.mark_unknown, claim.key, str(exc), run_id=claim.run_id)
            return outcome(DeliveryOutcome.UNKNOWN, attempt + 1, reason=str(exc))
        except QuotaExceededError as exc:
            quota_out.set()
            return give_back(DeliveryOutcome.PARKED, attempt + 1, str(exc))
        except PermanentSendError as exc:
            _guarded(ledger.mark_failed, claim.key, str(exc), run_id=claim.run_id)
            return outcome(DeliveryOutcome.FAILED, attempt + 1, reason=str(exc))
        if not _guarded(ledger.mark_sent, claim.key, provider_id, run_id=claim.run_id):
            logger.error("SENT %s (%s) but the ledger did not record it", claim.key, provider_id)
            return outcome(DeliveryOutcome.SENT, attempt + 1, provider_id, LEDGER_MARK_FAILED)
        return outcome(DeliveryOutcome.SENT, attempt + 1, provider_id)
    raise AssertionError("unreachable: the loop returns on its last attempt")


LEDGER_MARK_FAILED = "ledger_mark_failed"


def _guarded(mark: Callable[..., None], key: str, *args: str, run_id: str) -> bool:
    """Apply a ledger mark or release; log (the key and the error's class only) and return False if it failed.

    A mark fails when the ledger is unreachable, or when this run no longer holds the claim (its lease
    ran out: another run took it over or made it UNKNOWN).
    """
    try:
        mark(key, *args, run_id=run_id)
    except Exception as exc:
        logger.error("ledger %s of %s failed: %s", getattr(mark, "__name__", "mark"), key, type(exc).__name__)
        return False
    return True


def tally(outcomes: Sequence[Outcome]) -> Counter[str]:
    """Count outcomes by name."""
    return Counter(o.outcome for o in outcomes)


_BUCKETS: dict[tuple[str, float, float], TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def process_bucket(channel: str, rate: float, largest: float = 1.0) -> TokenBucket:
    """Return the one token bucket of this process for a channel, shared by all shards.

    ``largest``: the largest single cost (SMS parts), so that the bucket can hold it.
    """
    with _BUCKETS_LOCK:
        key = (channel, rate, largest)
        if key not in _BUCKETS:
            _BUCKETS[key] = TokenBucket(rate, largest=largest)
        return _BUCKETS[key]


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
        # tokens are SMS parts: the bucket holds at least the longest SMS allowed
        return sms, process_bucket(sms.name, settings.sms_rate, settings.sms_max_parts)
    email = SesEmailSender(ses_client(settings), settings.sender, settings.ses_configuration_set)
    return email, process_bucket(email.name, settings.email_rate)


def paused_kinds(
    channel: str, settings: Settings, read: Callable[[str], object] = read_variable
) -> frozenset[MessageKind]:
    """Return the kinds of message not to send on a channel now: all when an operator stopped it.

    Stopped: the setting, or the Prefect Variable ``paused_channels`` (a list of channel names, or a
    comma-separated string), which can be set in the UI during a run; delivery looks at it between
    batches. When Prefect cannot be asked, the switch fails closed for marketing (it waits for a
    later run) and open for transactional messages (an order update should not wait).
    """
    if channel in settings.paused_channels:
        return frozenset(MessageKind)
    try:
        value = read(PAUSED_VARIABLE)
    except Exception as exc:
        logger.warning("kill switch unreadable (%s): marketing on %s paused", type(exc).__name__, channel)
        return frozenset({MessageKind.MARKETING})
    return frozenset(MessageKind) if channel in listed_names(value) else frozenset()


def channel_paused(channel: str, settings: Settings, kind: MessageKind = MessageKind.MARKETING) -> bool:
    """Return whether messages of ``kind`` must not go out on a channel now (see ``paused_kinds``)."""
    return kind in paused_kinds(channel, settings)


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
    check_lease(settings)
    ledger = open_ledger(settings, dynamodb_client)
    try:
        with variable_reader() as read:
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
                        backoff=shard_backoff(settings),
                        paused=partial(paused_kinds, channel.name, settings, read),
                        opt_outs=partial(suppressed_now, settings),
                        campaigns=partial(campaign_pauses, settings, read),
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
