"""Benchmark delivery: the engine's send path (plan, render, ledger, send) against a bare boto3 loop, one local SES.

    uv run python bench/delivery.py --messages 100000 --concurrency 8 --shard-size 5000

One moto server runs in this process on 127.0.0.1 (fake credentials, the sender verified).

1. engine: a synthetic shop of N customers, all lapsed 100 days before ``as_of`` with email
   opt-in, goes through the daily run's task functions (``.fn``, no Prefect orchestration)
   in the flow's order: load, profile, plan, render per shard, deliver per shard through the
   SQLite send ledger. The win-back campaign holds 10% out, so about 0.9 N are sent; rates use
   the exact number sent.
2. bare loop: the same rendered messages (read from the engine's rendered shards), one
   ``send_raw_email`` per message built by ``tasks.deliver.channels.build_mime``, no ledger, no Prefect,
   the same endpoint and the same number of threads.
3. checks: SES ``SentLast24Hours`` moved by exactly what each path says it sent, and a second
   engine delivery of the same shards sends nothing (all ``already_sent``).

The engine's delivery consults the Prefect Variable ``paused_channels`` (the kill switch) and reads
the suppression list again every 200 messages, as in production: outside a flow that starts
Prefect's temporary local server (127.0.0.1), warmed up before timing and stopped at the end. Its
SES client makes one attempt per call (no botocore retries: a lost answer is never resent).

``--channel null`` measures the engine's own cost of a message instead: no SES, no moto; the email channel
builds each message's raw MIME (``build_mime``) and drops it. The same shop goes through load, profile, plan,
render and deliver (SQLite ledger: claim, then mark sent), and the report gives the process CPU per sent
message of each part: the plan's share (plan CPU / messages), render, and delivery (ledger + MIME + the
engine's bookkeeping), beside a bare ``build_mime`` loop over the same messages (MIME alone), and the CPU per
message of a second delivery that finds every message already sent. Target: under 1 ms in all, so one worker
keeps a 1,000 msg/s SES account busy. Written to delivery-null-<messages>.json.

Prints a table and writes JSON to bench/results/delivery-<messages>.json. ``--profile`` runs the
engine's delivery under cProfile (all threads) and prints its top costs; its timings are then
not comparable with a plain run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import os
import pstats
import resource
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REGION = "eu-central-1"
SENDER = "Loyalty Flows Bench <hello@shop.example.com>"
AS_OF = date(2024, 6, 1)
LAPSED_DAYS = 100  # inside win-back's 90-180 day audience
BENCH_ROOT = Path(__file__).resolve().parent

# Per locale: time zone, country, first names.
LOCALES = {
    "ru": ("Europe/Moscow", "RU", ["Анна", "Иван", "Мария", "Дмитрий", "Ольга"]),
    "pl": ("Europe/Warsaw", "PL", ["Ola", "Piotr", "Kasia", "Tomasz", "Zofia"]),
    "en": ("Europe/London", "GB", ["Alice", "Bob", "Carol", "Dave", "Emma"]),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the synthetic shop ----------------------------------------------------------------------------------------


def synth_shop(n: int, as_of: date, seed: int = 7) -> dict[Any, pd.DataFrame]:
    """N customers in the data contract, each with one delivered order ``LAPSED_DAYS`` before ``as_of``."""
    from tasks.data.contract import SPECS
    from tasks.kernel.enums import Table

    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    customer_id = "C" + pd.Series(idx).astype(str).str.zfill(8)
    locale_names = np.array(list(LOCALES))
    loc = idx % len(locale_names)
    zones = np.array([LOCALES[code][0] for code in locale_names])
    countries = np.array([LOCALES[code][1] for code in locale_names])
    pick = rng.integers(0, 5, n)
    names = np.array([LOCALES[code][2] for code in locale_names], dtype=object)[loc, pick]
    created = "2023-01-01T10:00:00Z"
    customers = pd.DataFrame(
        {
            "customer_id": customer_id,
            "email": "c" + pd.Series(idx).astype(str) + "@example.com",
            "phone": "",
            "first_name": names,
            "last_name": "",
            "gender": "unknown",
            "birth_date": "",
            "locale": locale_names[loc],
            "timezone": zones[loc],
            "country": countries[loc],
            "created_at": created,
            "email_opt_in": "true",
            "email_opt_in_at": created,
            "sms_opt_in": "false",
            "sms_opt_in_at": "",
        },
        columns=[c.name for c in SPECS[Table.CUSTOMERS].columns],
    )
    ordered = f"{(as_of - timedelta(days=LAPSED_DAYS)).isoformat()}T12:00:00Z"
    order_id = "O" + pd.Series(idx).astype(str).str.zfill(8)
    orders = pd.DataFrame(
        {
            "order_id": order_id,
            "customer_id": customer_id,
            "created_at": ordered,
            "status": "delivered",
            "total": "25.00",
            "currency": "EUR",
        }
    )
    products = pd.DataFrame(
        [["P1", "Cat food 2kg", "cat_food", "25.00", "EUR", "true", "", "", "2023-01-01T00:00:00Z"]],
        columns=[c.name for c in SPECS[Table.PRODUCTS].columns],
    )
    items = pd.DataFrame({"order_id": order_id, "product_id": "P1", "quantity": "1", "unit_price": "25.00"})

    def empty(table: Table) -> pd.DataFrame:
        return pd.DataFrame(columns=[c.name for c in SPECS[table].columns])

    return {
        Table.CUSTOMERS: customers,
        Table.PRODUCTS: products,
        Table.ORDERS: orders,
        Table.ORDER_ITEMS: items,
        Table.ORDER_EVENTS: empty(Table.ORDER_EVENTS),
        Table.EVENTS: empty(Table.EVENTS),
        Table.STOCK_EVENTS: empty(Table.STOCK_EVENTS),
    }


def write_shop(frames: dict[Any, pd.DataFrame], folder: Path) -> Path:
    """One CSV per table, as ``tests/shops.write_shop`` writes them."""
    from tasks.data.contract import LOAD_ORDER

    folder.mkdir(parents=True, exist_ok=True)
    for table in (t for t in LOAD_ORDER if t in frames):  # no point_movements: the shop gives no spending data
        frames[table].to_csv(folder / f"{table.value}.csv", index=False)
    return folder


# --- local SES -------------------------------------------------------------------------------------------------


@contextmanager
def moto_ses() -> Iterator[str]:
    """One moto server on 127.0.0.1 in this process; yields its endpoint with AWS_ENDPOINT_URL pointing at it."""
    from moto.server import ThreadedMotoServer

    from tasks.demo.local_aws import FAKE_CREDENTIALS, _free_port

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        verify_sender(endpoint)
        yield endpoint
    finally:
        server.stop()


def ses(endpoint: str) -> Any:
    import boto3

    return boto3.client("ses", region_name=REGION, endpoint_url=endpoint)


def verify_sender(endpoint: str) -> None:
    ses(endpoint).verify_email_identity(EmailAddress=parseaddr(SENDER)[1])


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=30).close()
    verify_sender(endpoint)


def sent_last_24h(endpoint: str) -> int:
    return int(ses(endpoint).get_send_quota()["SentLast24Hours"])


# --- Prefect outside a flow ------------------------------------------------------------------------------------


def use_plain_logger() -> None:
    """``deliver_shard`` logs its counts through ``get_run_logger``, which needs a flow or task run context.

    Called through ``.fn`` there is none, so the module's logger becomes a standard one (one call per shard).
    """
    import tasks.deliver.delivery

    logger = logging.getLogger("bench.delivery")
    tasks.deliver.delivery.get_run_logger = lambda: logger  # type: ignore[assignment]


def stop_prefect_temporary_server() -> None:
    """Stop the temporary Prefect server a Variable lookup outside a flow started, if any."""
    from prefect.server.api.server import SubprocessASGIServer

    instance = SubprocessASGIServer._instances.get(None)
    if instance is not None and instance.server_process is not None:
        instance.stop()


# --- profiling every thread ------------------------------------------------------------------------------------


@contextmanager
def profile_all_threads(sink: list[cProfile.Profile]) -> Iterator[None]:
    """cProfile the calling thread and every thread started inside the block (cProfile alone sees one thread)."""
    lock = threading.Lock()

    def start_in_thread(frame: Any, event: str, arg: Any) -> None:
        profiler = cProfile.Profile()
        with lock:
            sink.append(profiler)
        sys.setprofile(None)
        profiler.enable()

    main = cProfile.Profile()
    sink.append(main)
    threading.setprofile(start_in_thread)
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]


def top_costs(profiles: list[cProfile.Profile], limit: int = 25) -> tuple[str, list[dict[str, Any]]]:
    stats = pstats.Stats(profiles[0])
    for profiler in profiles[1:]:
        stats.add(profiler)
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    rows = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (file, line, func), (_, calls, tottime, cumtime, _) in sorted(raw.items(), key=lambda kv: -kv[1][2])[:limit]:
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({func})",
                "calls": calls,
                "tottime_s": round(tottime, 3),
                "cumtime_s": round(cumtime, 3),
            }
        )
    return out.getvalue(), rows


# --- the two paths ---------------------------------------------------------------------------------------------


class Clock:
    """Named wall-clock phases with the peak RSS after each."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        start, cpu = time.perf_counter(), time.process_time()
        value = fn()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        self.phases[name] = {
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        print(f"  {name:<34} {seconds:9.2f} s  cpu {cpu:9.2f} s  peak RSS {peak_rss_mb():8.1f} MB", flush=True)
        return value

    def seconds(self, *names: str) -> float:
        return sum(self.phases[n]["seconds"] for n in names)

    def cpu_ms_per(self, name: str, count: int) -> float:
        return round(1000 * self.phases[name]["cpu_seconds"] / count, 2) if count else 0.0


def deliver_all(paths: Any, plan: Any, settings: Any, run_id: str, total: int) -> Counter[str]:
    """``deliver_shard.fn`` per shard, wave by wave, each at its planned time (the flow maps them over its task
    runner; its simulated clock sends each wave at its time, as here)."""
    from tasks.deliver.delivery import deliver_shard

    counts: Counter[str] = Counter()
    for wave in plan.waves:
        for shard in wave.shards:
            counts.update(deliver_shard.fn(paths, shard, settings, run_id, None, total, wave.at))
    return counts


def bare_loop(
    files: list[Path], endpoint: str, concurrency: int, mailto: str, sizes: list[int]
) -> tuple[int, Counter[str]]:
    """One ``send_raw_email`` per rendered message, MIME from ``build_mime``, a thread pool, nothing else."""
    from botocore.exceptions import BotoCoreError, ClientError

    from tasks.deliver.channels import EmailMessageOut, build_mime
    from tasks.kernel.enums import MessageKind

    client = ses(endpoint)
    errors: Counter[str] = Counter()

    def send(message: EmailMessageOut) -> bool:
        raw = build_mime(message, SENDER)
        sizes.append(len(raw))
        try:
            client.send_raw_email(RawMessage={"Data": raw})
        except (ClientError, BotoCoreError) as exc:
            errors[type(exc).__name__] += 1
            return False
        return True

    sent = 0
    columns = ["idempotency_key", "to_address", "to_name", "subject", "html", "text", "kind", "unsubscribe_url"]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bare") as pool:
        for path in files:
            frame = pd.read_parquet(path, columns=columns)
            messages = [
                EmailMessageOut(
                    key=key,
                    to_address=to,
                    to_name=name,
                    subject=subject,
                    html=html,
                    text=text,
                    kind=MessageKind(kind),
                    unsubscribe_url=url,
                    unsubscribe_mailto=mailto,
                )
                for key, to, name, subject, html, text, kind, url in frame.itertuples(index=False, name=None)
            ]
            sent += sum(pool.map(send, messages))
    return sent, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="customers in the shop (about 0.9 are sent)")
    parser.add_argument("--concurrency", type=int, default=8, help="send threads (LOYALTY_SEND_CONCURRENCY)")
    parser.add_argument("--shard-size", type=int, default=5000, help="messages per shard (LOYALTY_SHARD_SIZE)")
    parser.add_argument("--json", type=Path, default=None, help="default: bench/results/delivery-<messages>.json")
    parser.add_argument("--profile", action="store_true", help="cProfile the engine's delivery (all threads)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--channel",
        choices=("ses", "null"),
        default="ses",
        help="ses: the local SES (moto) and a bare boto3 loop; null: a channel that only builds the MIME",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="loyalty-bench-delivery-"))
    os.environ.update(
        {
            "LOYALTY_OUTPUT_DIR": str(work / "out"),
            "LOYALTY_STATE_DIR": str(work / "state"),
            "LOYALTY_EMAIL_RATE": "1000000",
            "LOYALTY_SEND_CONCURRENCY": str(args.concurrency),
            "LOYALTY_SHARD_SIZE": str(args.shard_size),
            "LOYALTY_LEDGER_BACKEND": "sqlite",
            "LOYALTY_AWS_REGION": REGION,
            "LOYALTY_SENDER": SENDER,
            "LOYALTY_DRY_RUN": "false",
            "LOYALTY_PAUSED_CHANNELS": "[]",
        }
    )
    try:
        report = run(args, work) if args.channel == "ses" else run_null(args, work)
    finally:
        stop_prefect_temporary_server()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    name = "delivery" if args.channel == "ses" else "delivery-null"
    target = args.json or BENCH_ROOT / "results" / f"{name}-{args.messages}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (print_table if args.channel == "ses" else print_null_table)(report)
    print(f"-> {target}")
    if not all(report["checks"].values()):
        sys.exit(1)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from prefect import Task

    import flows.daily_run
    from tasks.data.snapshot import load_snapshot
    from tasks.deliver.delivery import channel_paused
    from tasks.kernel.aws import dynamodb_client
    from tasks.kernel.paths import RunPaths
    from tasks.kernel.settings import Settings
    from tasks.ledger.backend import open_ledger
    from tasks.plan.planner import plan_day
    from tasks.profile.features import profile_customers
    from tasks.render.compose import render_messages

    use_plain_logger()
    clock = Clock()
    print(f"delivery benchmark: {args.messages:,} customers, concurrency {args.concurrency}, in {work}", flush=True)
    shop = clock("synth: generate + write csv", lambda: write_shop(synth_shop(args.messages, AS_OF), work / "shop"))

    with moto_ses() as endpoint:
        settings = Settings()
        paths = RunPaths.for_day(settings.output_dir, AS_OF)
        # the morning of as_of in the shop's zone: before the 10:00 local send time, so nothing is late
        sending_at = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 3, 0, tzinfo=UTC)

        print("engine", flush=True)
        clock("engine: load + validate", lambda: load_snapshot.fn(str(shop), AS_OF, paths, settings))
        clock("engine: profile", lambda: profile_customers.fn(paths, AS_OF, settings))
        plan = clock("engine: plan", lambda: plan_day.fn(paths, AS_OF, settings, sending_at))
        rendered = clock(
            "engine: render", lambda: sum(render_messages.fn(paths, s, AS_OF, settings) for s in plan.shards)
        )
        # the kill-switch lookup starts Prefect's temporary server on first use: not part of the send
        clock("prefect api warm-up (untimed)", lambda: channel_paused("email", settings))

        before = sent_last_24h(endpoint)
        run_id = str(uuid.uuid4())
        profiles: list[cProfile.Profile] = []
        if args.profile:
            with profile_all_threads(profiles):
                counts = clock("engine: deliver", lambda: deliver_all(paths, plan, settings, run_id, rendered))
        else:
            counts = clock("engine: deliver", lambda: deliver_all(paths, plan, settings, run_id, rendered))
        engine_sent = counts["sent"]
        engine_ses_delta = sent_last_24h(endpoint) - before
        ledger = open_ledger(settings, dynamodb_client)
        try:
            ledger_counts = ledger.count(run_id)
        finally:
            ledger.close()

        before = sent_last_24h(endpoint)
        rerun = clock(
            "engine: deliver again (rerun)",
            lambda: deliver_all(paths, plan, settings, str(uuid.uuid4()), rendered),
        )
        rerun_ses_delta = sent_last_24h(endpoint) - before

        print("bare loop", flush=True)
        clock("moto reset", lambda: reset_moto(endpoint))
        before = sent_last_24h(endpoint)
        files = [paths.rendered_shard(s) for s in plan.shards]
        sizes: list[int] = []
        bare_sent, bare_errors = clock(
            "bare loop: send",
            lambda: bare_loop(files, endpoint, args.concurrency, settings.unsubscribe_mailto, sizes),
        )
        bare_ses_delta = sent_last_24h(endpoint) - before

    shards = len(plan.shards)
    fixed = sorted(
        name
        for name, obj in vars(flows.daily_run).items()
        if isinstance(obj, Task) and name not in ("render_messages", "deliver_shard")
    )
    task_runs = len(fixed) + 2 * shards
    deliver_s = clock.seconds("engine: deliver")
    end_to_end_s = clock.seconds(
        "engine: load + validate", "engine: profile", "engine: plan", "engine: render", "engine: deliver"
    )
    bare_s = clock.seconds("bare loop: send")
    deliver_rate = engine_sent / deliver_s if deliver_s else 0.0
    bare_rate = bare_sent / bare_s if bare_s else 0.0
    checks = {
        "engine_all_sent": dict(counts) == {"sent": rendered},
        "engine_ses_delta_equals_sent": engine_ses_delta == engine_sent,
        "engine_ledger_sent_equals_sent": ledger_counts.get("sent", 0) == engine_sent,
        "rerun_all_already_sent": dict(rerun) == {"already_sent": rendered},
        "rerun_ses_delta_zero": rerun_ses_delta == 0,
        "bare_ses_delta_equals_sent": bare_ses_delta == bare_sent,
        "same_message_count": bare_sent == engine_sent,
    }
    report: dict[str, Any] = {
        "benchmark": "delivery",
        "customers": args.messages,
        "concurrency": args.concurrency,
        "shard_size": args.shard_size,
        "profiled": args.profile,
        "ledger_backend": settings.ledger_backend,
        "planned": plan.planned,
        "to_send": plan.to_send,
        "plan_by_decision": plan.by_decision,
        "rendered": rendered,
        "shards": shards,
        "engine": {
            "sent": engine_sent,
            "outcomes": dict(counts),
            "ledger_counts": ledger_counts,
            "ses_sent_delta": engine_ses_delta,
            "render_s": clock.seconds("engine: render"),
            "deliver_s": deliver_s,
            "end_to_end_s": round(end_to_end_s, 3),
            "end_to_end_covers": "load + profile + plan + render + deliver (not synth, not the Prefect warm-up)",
            "deliver_msgs_per_s": round(deliver_rate, 1),
            "end_to_end_msgs_per_s": round(engine_sent / end_to_end_s, 1) if end_to_end_s else 0.0,
            "render_msgs_per_s": round(rendered / clock.seconds("engine: render"), 1),
            "rerun_outcomes": dict(rerun),
            "rerun_ses_sent_delta": rerun_ses_delta,
            "rerun_s": clock.seconds("engine: deliver again (rerun)"),
            "deliver_cpu_ms_per_msg": clock.cpu_ms_per("engine: deliver", engine_sent),
        },
        "bare_loop": {
            "sent": bare_sent,
            "errors": dict(bare_errors),
            "ses_sent_delta": bare_ses_delta,
            "seconds": bare_s,
            "msgs_per_s": round(bare_rate, 1),
            "cpu_ms_per_msg": clock.cpu_ms_per("bare loop: send", bare_sent),
            "mean_raw_mime_bytes": round(sum(sizes) / len(sizes)) if sizes else 0,
        },
        "cpu_note": "process CPU includes the in-process moto server; the Prefect temporary server is a subprocess",
        "engine_vs_bare_pct": round(100 * deliver_rate / bare_rate, 1) if bare_rate else None,
        "prefect_task_runs": {
            "formula": f"{len(fixed)} fixed ({', '.join(fixed)}) + 2 per shard (render_messages, deliver_shard)",
            "shards": shards,
            "per_run": task_runs,
            "per_1000_messages": round(1000 * task_runs / plan.to_send, 2) if plan.to_send else None,
            "per_1000_messages_asymptotic": round(2000 / args.shard_size, 2),
        },
        "checks": checks,
        "phases": clock.phases,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpus": os.cpu_count(),
    }
    if profiles:
        text, rows = top_costs(profiles)
        print(text)
        report["deliver_profile_top_tottime"] = rows
    return report


# --- the engine's own cost of a message (--channel null) -------------------------------------------------------


class NullEmailSender:
    """An email channel that does nothing with a message but build its raw MIME, as SES's would be built."""

    def __init__(self, sender: str, configuration_set: str | None = None) -> None:
        self._sender, self._configuration_set = sender, configuration_set
        self.built_bytes = 0

    @property
    def name(self) -> str:
        return "null-email"

    def send(self, message: Any) -> str:
        from tasks.deliver.channels import build_mime

        self.built_bytes += len(build_mime(message, self._sender, self._configuration_set))
        return f"null-{message.key}"


def use_null_channel() -> None:
    """Every email shard goes to a ``NullEmailSender`` (the demo shop of this bench has no SMS)."""
    import tasks.deliver.delivery
    from tasks.deliver.delivery import process_bucket

    def open_null(name: str, settings: Any) -> tuple[Any, Any]:
        if name != "email":
            raise ValueError(f"the null channel is email only, not {name}")
        sender = NullEmailSender(settings.sender, settings.ses_configuration_set)
        return sender, process_bucket(sender.name, settings.email_rate)

    tasks.deliver.delivery.open_channel = open_null  # type: ignore[assignment]


def mime_loop(files: list[Path], mailto: str) -> int:
    """``build_mime`` for every rendered message, nothing else: the floor of the delivery's CPU."""
    from tasks.deliver.channels import EmailMessageOut, build_mime
    from tasks.kernel.enums import MessageKind

    built = 0
    columns = ["idempotency_key", "to_address", "to_name", "subject", "html", "text", "kind", "unsubscribe_url"]
    for path in files:
        frame = pd.read_parquet(path, columns=columns)
        for key, to, name, subject, html, text, kind, url in frame.itertuples(index=False, name=None):
            message = EmailMessageOut(
                key=key,
                to_address=to,
                to_name=name,
                subject=subject,
                html=html,
                text=text,
                kind=MessageKind(kind),
                unsubscribe_url=url,
                unsubscribe_mailto=mailto,
            )
            build_mime(message, SENDER)
            built += 1
    return built


def run_null(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The engine's CPU per sent message with a channel that does nothing: plan share, render, ledger + MIME."""
    from tasks.data.snapshot import load_snapshot
    from tasks.deliver.delivery import channel_paused
    from tasks.kernel.aws import dynamodb_client
    from tasks.kernel.paths import RunPaths
    from tasks.kernel.settings import Settings
    from tasks.ledger.backend import open_ledger
    from tasks.plan.planner import plan_day
    from tasks.profile.features import profile_customers
    from tasks.render.compose import render_messages

    use_plain_logger()
    use_null_channel()
    clock = Clock()
    print(f"cost of a message: {args.messages:,} customers, null channel, in {work}", flush=True)
    shop = clock("synth: generate + write csv", lambda: write_shop(synth_shop(args.messages, AS_OF), work / "shop"))
    settings = Settings()
    paths = RunPaths.for_day(settings.output_dir, AS_OF)
    sending_at = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 3, 0, tzinfo=UTC)
    clock("load + validate", lambda: load_snapshot.fn(str(shop), AS_OF, paths, settings))
    clock("profile", lambda: profile_customers.fn(paths, AS_OF, settings))
    plan = clock("plan", lambda: plan_day.fn(paths, AS_OF, settings, sending_at))
    rendered = clock("render", lambda: sum(render_messages.fn(paths, s, AS_OF, settings) for s in plan.shards))
    clock("prefect api warm-up (untimed)", lambda: channel_paused("email", settings))
    run_id = str(uuid.uuid4())
    profiles: list[cProfile.Profile] = []
    with profile_all_threads(profiles) if args.profile else contextlib.nullcontext():
        counts = clock("deliver (ledger + MIME)", lambda: deliver_all(paths, plan, settings, run_id, rendered))
    sent = counts["sent"]
    ledger = open_ledger(settings, dynamodb_client)
    try:
        ledger_counts = ledger.count(run_id)
    finally:
        ledger.close()
    rerun = clock("deliver again (all already sent)", lambda: deliver_all(paths, plan, settings, str(uuid.uuid4()), 0))
    files = [paths.rendered_shard(s) for s in plan.shards]
    built = clock("bare build_mime loop", lambda: mime_loop(files, settings.unsubscribe_mailto))

    per = {
        "plan_share": clock.cpu_ms_per("plan", sent),
        "render": clock.cpu_ms_per("render", sent),
        "deliver": clock.cpu_ms_per("deliver (ledger + MIME)", sent),
    }
    total = round(sum(per.values()), 3)
    mime = clock.cpu_ms_per("bare build_mime loop", built)
    report: dict[str, Any] = {
        "benchmark": "delivery-null",
        "customers": args.messages,
        "concurrency": args.concurrency,
        "shard_size": args.shard_size,
        "ledger_backend": settings.ledger_backend,
        "planned": plan.planned,
        "to_send": plan.to_send,
        "rendered": rendered,
        "sent": sent,
        "cpu_ms_per_sent_message": {**per, "total": total, "of_which_mime_alone": mime},
        "deliver_ledger_and_bookkeeping_ms": round(per["deliver"] - mime, 3),
        "rerun_cpu_ms_per_message": clock.cpu_ms_per("deliver again (all already sent)", rendered),
        "target_ms": 1.0,
        "under_target": total < 1.0,
        "messages_per_cpu_second": round(1000 / total) if total else None,
        "deliver_msgs_per_s": round(sent / clock.seconds("deliver (ledger + MIME)"), 1),
        "rerun_outcomes": dict(rerun),
        "checks": {
            "all_sent": dict(counts) == {"sent": rendered},
            "ledger_sent_equals_sent": ledger_counts.get("sent", 0) == sent,
            "rerun_all_already_sent": dict(rerun) == {"already_sent": rendered},
            "mime_loop_saw_every_message": built == sent,
        },
        "cpu_note": "process CPU of this process, all threads; the Prefect temporary server is a subprocess",
        "phases": clock.phases,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpus": os.cpu_count(),
    }
    if profiles:
        text, rows = top_costs(profiles)
        print(text)
        report["deliver_profile_top_tottime"] = rows
    return report


def print_null_table(report: dict[str, Any]) -> None:
    per = report["cpu_ms_per_sent_message"]
    lines = [
        ("customers / to send / sent", f"{report['customers']:,} / {report['to_send']:,} / {report['sent']:,}"),
        ("CPU per sent message: plan share", f"{per['plan_share']:.3f} ms"),
        ("CPU per sent message: render", f"{per['render']:.3f} ms"),
        ("CPU per sent message: deliver", f"{per['deliver']:.3f} ms (MIME alone {per['of_which_mime_alone']:.3f} ms)"),
        ("CPU per sent message: total", f"{per['total']:.3f} ms (target < {report['target_ms']} ms)"),
        ("CPU per message: rerun (all already sent)", f"{report['rerun_cpu_ms_per_message']:.3f} ms"),
        ("messages per CPU second", f"{report['messages_per_cpu_second']:,}"),
        ("deliver wall rate", f"{report['deliver_msgs_per_s']:,.0f} msg/s"),
        ("peak RSS", f"{report['peak_rss_mb']:,.0f} MB"),
    ]
    print_lines(lines, report["checks"])


def print_lines(lines: list[tuple[str, str]], checks: dict[str, bool]) -> None:
    """A report's lines, then its checks, as an aligned two-column table."""
    lines = [*lines, *((f"check: {name}", "ok" if ok else "FAILED") for name, ok in checks.items())]
    width = max(len(k) for k, _ in lines)
    print()
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    if not all(checks.values()):
        print("SOME CHECKS FAILED")


def print_table(report: dict[str, Any]) -> None:
    engine, bare, runs = report["engine"], report["bare_loop"], report["prefect_task_runs"]
    lines = [
        ("customers / to send / sent", f"{report['customers']:,} / {report['to_send']:,} / {engine['sent']:,}"),
        ("shards x size, concurrency", f"{report['shards']} x {report['shard_size']}, {report['concurrency']}"),
        ("engine render", f"{engine['render_s']:.1f} s  ({engine['render_msgs_per_s']:,.0f} msg/s)"),
        ("engine deliver", f"{engine['deliver_s']:.1f} s  ({engine['deliver_msgs_per_s']:,.0f} msg/s)"),
        ("engine end-to-end", f"{engine['end_to_end_s']:.1f} s  ({engine['end_to_end_msgs_per_s']:,.0f} msg/s)"),
        ("bare loop", f"{bare['seconds']:.1f} s  ({bare['msgs_per_s']:,.0f} msg/s)"),
        ("engine deliver / bare loop", f"{report['engine_vs_bare_pct']}%"),
        (
            "process CPU per message",
            f"engine deliver {engine['deliver_cpu_ms_per_msg']} ms, bare loop {bare['cpu_ms_per_msg']} ms"
            " (moto included)",
        ),
        ("mean raw MIME size", f"{bare['mean_raw_mime_bytes']:,} bytes"),
        ("engine rerun (all already_sent)", f"{engine['rerun_s']:.1f} s  {engine['rerun_outcomes']}"),
        ("peak RSS", f"{report['peak_rss_mb']:,.0f} MB"),
        ("Prefect task runs per run", f"{runs['per_run']} = {runs['formula']}"),
        ("task runs per 1,000 messages", f"{runs['per_1000_messages']} (-> {runs['per_1000_messages_asymptotic']})"),
    ]
    print_lines(lines, report["checks"])


if __name__ == "__main__":
    main()
