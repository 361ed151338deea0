"""Deliver a shard of messages through the ledger, with bounded concurrency and a rate limit.

Each message is claimed in the ledger, sent, then marked, a batch at a time: one ledger read skips
what is already sent or failed; one ledger call claims a batch (``claim_batch``: about a quarter-second
of the channel's rate) and returns only once those claims are durable, then they are sent and their
marks written in one more call. A crash therefore leaves at most about one batch claimed per shard,
unsent or sent and unmarked: UNKNOWN after the lease, like a crash between send and mark always was.
Its outcome is one of ``DeliveryOutcome``:

- ``sent``: the provider accepted it (``reason`` ``ledger_mark_failed`` when the ledger could not record
  it: logged loudly, never resent by this run);
- ``already_sent``: the ledger had the key (another run, host or earlier attempt): nothing sent;
- ``unknown``: nobody knows whether it went out: its answer was lost (the connection closed or the
  read timed out after the request left), or an earlier run crashed holding its claim. The entry is
  UNKNOWN: marketing is never resent; transactional is taken over and resent by a later run;
- ``failed``: refused for good (a rejected or malformed message, an address without an ASCII form,
  or any unexpected error of this one message: its reason is the error's class name only);
- ``retry_later``: still transient after every backoff, the rate tokens not had in time (the first
  attempt within ``send_token_wait`` of the claim), or the ledger unreachable for the claim: the claim
  released for a later run;
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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from operator import attrgetter
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
from tasks.ledger.protocol import Claim, Ledger, Mark
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

    @property
    def rate(self) -> float:
        return self._rate

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
        to the end, and every backoff at its ceiling. The first attempt's wait counts from the batch's claim:
        tokens and a free send thread."""
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
# Seconds of a channel's rate claimed in one ledger batch: what a crash can leave claimed and unsent (or
# sent and unmarked), UNKNOWN after the lease. A batch is never smaller than the send threads.
CLAIM_AHEAD = 0.25


def claim_batch(rate: float, concurrency: int) -> int:
    """How many messages delivery claims in one ledger call (and marks in one): ``CLAIM_AHEAD`` seconds of the
    channel's ``rate``, at least ``concurrency``, at most ``SWITCH_EVERY``."""
    return max(concurrency, min(SWITCH_EVERY, int(rate * CLAIM_AHEAD)))


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
    the suppression list (``opt_outs``). It then skips, without a write, what the ledger holds as sent
    or failed, and claims the rest ``claim_batch`` at a time: one ledger call, durable before any of
    its messages goes out; they are sent on ``concurrency`` threads and marked in one ledger call.
    """
    quota_out = threading.Event()
    size = claim_batch(bucket.rate, concurrency)
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send") as pool:
        for start in range(0, len(batch), SWITCH_EVERY):
            chunk = batch[start : start + SWITCH_EVERY]
            go, held = _hold_back(chunk, paused(), opt_outs(), campaigns())
            go, done = _skip_done(go, ledger)
            outcomes += held
            outcomes += done
            for first in range(0, len(go), size):
                outcomes += _deliver_batch(
                    go[first : first + size], ledger, channel, bucket, quota_out, backoff, sleep, pool
                )
            progress.advance("send", len(chunk))
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
            held.append(_outcome(item, DeliveryOutcome.PARKED))
        elif is_suppressed(item.message, claim.channel, claim.customer_id, opt_outs):
            held.append(_outcome(item, DeliveryOutcome.SUPPRESSED))
        else:
            go.append(item)
    return go, held


# Final ledger states: no claim can take such an entry, so delivery skips it without trying.
_DONE = frozenset({SendStatus.SENT, SendStatus.FAILED})


def _skip_done(chunk: list[Outgoing], ledger: Ledger) -> tuple[list[Outgoing], list[Outcome]]:
    """Split off the messages the ledger already holds as sent or failed (one batched read, no write)."""
    if not chunk:
        return chunk, []
    try:
        known = ledger.statuses([item.claim.key for item in chunk])
    except Exception as exc:  # the claims decide instead, one by one as before
        logger.warning("ledger lookup of %d keys failed (%s): claiming them all", len(chunk), type(exc).__name__)
        return chunk, []
    go: list[Outgoing] = []
    done: list[Outcome] = []
    for item in chunk:
        if known.get(item.claim.key) in _DONE:
            done.append(_outcome(item, DeliveryOutcome.ALREADY_SENT))
        else:
            go.append(item)
    return go, done


def _outcome(
    item: Outgoing,
    name: DeliveryOutcome,
    attempts: int = 0,
    provider_id: str | None = None,
    reason: str | None = None,
) -> Outcome:
    claim = item.claim
    return Outcome(claim.key, claim.customer_id, claim.channel, name, attempts, provider_id, reason)


# What a send thread hands back: the message's outcome and the ledger mark it needs (None: nothing to mark).
_Ended = tuple[Outcome, Mark | None]


def _deliver_batch(
    items: list[Outgoing],
    ledger: Ledger,
    channel: Sender,
    bucket: TokenBucket,
    quota_out: threading.Event,
    backoff: Backoff,
    sleep: Callable[[float], None],
    pool: ThreadPoolExecutor,
) -> list[Outcome]:
    """Claim a batch in one ledger call, send what it won on the pool, mark those sends in one ledger call.

    Nothing one message raises reaches the others.
    """
    if quota_out.is_set():
        return [_outcome(item, DeliveryOutcome.PARKED) for item in items]
    claimed_at = time.monotonic()
    try:
        wins = ledger.claim_many([item.claim for item in items])
    except Exception as exc:  # the ledger is unreachable: nothing was sent
        reason = f"ledger_{type(exc).__name__}"
        logger.warning("ledger claim of %d messages failed (%s): retry later", len(items), type(exc).__name__)
        for item in items:  # a backend that took some before it failed gives them back
            _guarded(ledger.release, item.claim.key, run_id=item.claim.run_id)
        return [_outcome(item, DeliveryOutcome.RETRY_LATER, reason=reason) for item in items]
    won = [item for item, win in zip(items, wins, strict=True) if win]
    send = partial(
        _send_one,
        ledger=ledger,
        channel=channel,
        bucket=bucket,
        quota_out=quota_out,
        backoff=backoff,
        sleep=sleep,
        claimed_at=claimed_at,
    )
    sent = iter(_record(list(pool.map(send, won)), ledger))  # marked once the whole batch has ended
    refused = _refused([item for item, win in zip(items, wins, strict=True) if not win], ledger)
    return [next(sent) if win else refused[item.claim.key] for item, win in zip(items, wins, strict=True)]


def _refused(items: list[Outgoing], ledger: Ledger) -> dict[str, Outcome]:
    """The outcomes of messages whose claim was refused: UNKNOWN when a crash or a lost answer left the entry
    so (marketing is never resent), else already sent (or being sent by another run)."""
    if not items:
        return {}
    try:
        known = ledger.statuses([item.claim.key for item in items])
    except Exception as exc:  # not ours to send now, whatever it is: a later run looks again
        reason = f"ledger_{type(exc).__name__}"
        return {item.claim.key: _outcome(item, DeliveryOutcome.RETRY_LATER, reason=reason) for item in items}
    return {
        item.claim.key: _outcome(
            item,
            DeliveryOutcome.UNKNOWN
            if known.get(item.claim.key) is SendStatus.UNKNOWN
            else DeliveryOutcome.ALREADY_SENT,
        )
        for item in items
    }


def _send_one(
    item: Outgoing,
    ledger: Ledger,
    channel: Sender,
    bucket: TokenBucket,
    quota_out: threading.Event,
    backoff: Backoff,
    sleep: Callable[[float], None],
    claimed_at: float,
) -> _Ended:
    """Send one claimed message; an unexpected error (a header MIME refuses, a bug) fails it alone."""
    try:
        return _send_claimed(item, ledger, channel, bucket, quota_out, backoff, sleep, claimed_at)
    except Exception as exc:
        reason = type(exc).__name__  # the class only: an error's text may carry an address
        logger.error("sending %s failed with %s: marked failed", item.claim.key, reason)
        return _outcome(item, DeliveryOutcome.FAILED, 1, reason=reason), _mark(item, SendStatus.FAILED, reason)


def _mark(item: Outgoing, status: SendStatus, detail: str) -> Mark:
    return Mark(item.claim.key, status, detail, item.claim.run_id)


def _send_claimed(
    item: Outgoing,
    ledger: Ledger,
    channel: Sender,
    bucket: TokenBucket,
    quota_out: threading.Event,
    backoff: Backoff,
    sleep: Callable[[float], None],
    claimed_at: float,
) -> _Ended:
    """Send a claimed message, retrying only what surely did not go through; return the mark its end needs.

    Its first attempt starts within ``backoff.token_wait`` of the claim (``claimed_at``, monotonic), waiting
    for its rate tokens and a free send thread, or the claim is given back: the lease budgets that wait
    (``Backoff.worst_case``).
    """
    cost_of = cost(item.message)

    def give_back(name: DeliveryOutcome, attempts: int, reason: str | None = None) -> _Ended:
        _guarded(ledger.release, item.claim.key, run_id=item.claim.run_id)
        return _outcome(item, name, attempts, reason=reason), None

    for attempt in range(backoff.attempts):
        if quota_out.is_set():
            return give_back(DeliveryOutcome.PARKED, attempt)
        wait = backoff.token_wait - (time.monotonic() - claimed_at) if attempt == 0 else backoff.token_wait
        if wait <= 0 or not bucket.acquire(cost_of, timeout=wait):
            return give_back(DeliveryOutcome.RETRY_LATER, attempt, "rate_wait")
        try:
            provider_id = channel.send(item.message)
        except TransientSendError as exc:  # surely not sent: safe to try again
            if attempt + 1 < backoff.attempts:
                sleep(backoff.delay(attempt, exc.throttled))
                continue
            return give_back(DeliveryOutcome.RETRY_LATER, attempt + 1, str(exc))
        except UnknownOutcomeError as exc:  # may have gone out: never resent by this run
            reason = str(exc)
            return _outcome(item, DeliveryOutcome.UNKNOWN, attempt + 1, reason=reason), _mark(
                item, SendStatus.UNKNOWN, reason
            )
        except QuotaExceededError as exc:
            quota_out.set()
            return give_back(DeliveryOutcome.PARKED, attempt + 1, str(exc))
        except PermanentSendError as exc:
            reason = str(exc)
            return _outcome(item, DeliveryOutcome.FAILED, attempt + 1, reason=reason), _mark(
                item, SendStatus.FAILED, reason
            )
        return _outcome(item, DeliveryOutcome.SENT, attempt + 1, provider_id), _mark(item, SendStatus.SENT, provider_id)
    raise AssertionError("unreachable: the loop returns on its last attempt")


def _record(ended: list[_Ended], ledger: Ledger) -> list[Outcome]:
    """Apply a batch's marks in one ledger call; return its outcomes.

    A mark that did not apply (the ledger unreachable, or this run no longer holds the claim: its lease
    ran out and another run took it over or made it UNKNOWN) is logged with its key; a message sent but
    not recorded is reported ``sent`` with ``ledger_mark_failed`` and never resent by this run.
    """
    marks = [mark for _, mark in ended if mark is not None]
    try:
        applied = ledger.mark_many(marks) if marks else []
    except Exception as exc:
        logger.error("ledger marks of %d messages failed: %s", len(marks), type(exc).__name__)
        applied = [False] * len(marks)
    answers = iter(applied)
    outcomes: list[Outcome] = []
    for outcome, mark in ended:
        if mark is not None and not next(answers):
            if outcome.outcome is DeliveryOutcome.SENT:
                logger.error("SENT %s (%s) but the ledger did not record it", outcome.key, outcome.provider_id)
                outcome = replace(outcome, reason=LEDGER_MARK_FAILED)
            else:
                logger.error("ledger did not record %s of %s", mark.status.value, outcome.key)
        outcomes.append(outcome)
    return outcomes


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


# The rendered columns a message and its claim are made of, in ``outgoing_from_rendered``'s order.
_OUTGOING_COLUMNS = (
    "idempotency_key",
    "channel",
    "kind",
    "to_address",
    "to_name",
    "subject",
    "html",
    "text",
    "unsubscribe_url",
    "campaign",
    "customer_id",
)


def outgoing_from_rendered(rendered: pd.DataFrame, settings: Settings, run_id: str) -> list[Outgoing]:
    """Turn rendered rows into messages with their ledger claims."""
    items = []
    kinds = {kind.value: kind for kind in MessageKind}
    sms = Channel.SMS.value
    columns = (rendered[name].tolist() for name in _OUTGOING_COLUMNS)  # plain lists: no row objects, no boxing
    for key, channel, kind_name, to, to_name, subject, html, text, url, campaign, customer_id in zip(
        *columns, strict=True
    ):
        kind = kinds.get(kind_name) or MessageKind(str(kind_name))
        message: OutboundMessage
        if channel == sms:
            message = SmsMessageOut(key=str(key), to_phone=str(to), text=str(text), kind=kind, opt_out_url=str(url))
        else:
            message = EmailMessageOut(
                key=str(key),
                to_address=str(to),
                to_name=None if to_name is None else str(to_name),
                subject=str(subject),
                html=str(html),
                text=str(text),
                kind=kind,
                unsubscribe_url=str(url),
                unsubscribe_mailto=settings.unsubscribe_mailto,
            )
        claim = Claim(
            key=message.key,
            campaign=str(campaign),
            channel=str(channel),
            customer_id=str(customer_id),
            kind=str(kind),  # a StrEnum's str is its value
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
    fields = list(Outcome.__dataclass_fields__)
    pd.DataFrame(map(attrgetter(*fields), outcomes), columns=fields).to_parquet(target, index=False)
    counts = tally(outcomes)
    get_run_logger().info("shard %d: %s", shard, dict(counts))
    return dict(counts)


# Messages between two moves of the progress artifact.
PROGRESS_EVERY = 1000
