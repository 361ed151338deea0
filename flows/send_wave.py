"""One wave of a planned day, as its own flow run: the ``send-wave`` deployment.

The deployed daily run (and an approved ad-hoc campaign run from its deployment) plans and renders, then
schedules one run of this flow per wave at its time and ends (``flows/waves.py``). A wave reads what to
send from the run folder's committed plan (``tasks/plan/waves.py``), never plans again: run it again by
hand (``loyalty send-wave``, or "Run" in the UI) days later and it sends what the day decided and has not
sent yet. The ledger sends nothing twice; the day's summary counts each message once (``report_wave``).
"""

from __future__ import annotations

from datetime import date, datetime

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.waves import ShardsFailedError, deliver_wave
from tasks.deliver.delivery import check_lease
from tasks.jobs.adhoc import AdhocSummary, adhoc_paths, report_adhoc
from tasks.kernel.calendar import SendClock, flow_run_id
from tasks.kernel.enums import DeliveryOutcome
from tasks.kernel.paths import RunPaths, private_files
from tasks.kernel.runstore import RunFolder, run_folder
from tasks.kernel.settings import Settings
from tasks.plan.waves import find_wave, planned_waves
from tasks.report.run_report import (
    FAILED_SHARDS,
    ledger_report,
    read_outcomes,
    read_wave_records,
    report_wave,
    settle_wave,
    start_send_progress,
    wave_totals,
)

# Two flow retries, five minutes apart: a retry sends the wave again through the ledger, which skips what
# went and sends what a transient fault (DynamoDB or SES throttled for minutes, a lost worker) held back.
# Ten minutes of retrying stays inside the 30 minutes after which a wave counts as late (``LATE_AFTER``).
RETRIES = 2
RETRY_DELAY_SECONDS = 300


@flow(
    name="send-wave",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]  # Prefect's runner generics
)
def send_wave(as_of: date, at: datetime, adhoc: str | None = None) -> dict[str, int]:
    """Send one wave of a planned and rendered day through the ledger, then count it in the day's summary.

    Args:
        as_of: The business date of the planned day (its run folder).
        at: The wave's send time, as the plan has it (UTC).
        adhoc: The ad-hoc campaign's name, for a wave of an ad-hoc campaign (its run folder); empty for a daily run.
    """
    settings = Settings()
    paths = adhoc_paths(settings.output_dir, adhoc, as_of) if adhoc else RunPaths.for_day(settings.output_dir, as_of)
    # With LOYALTY_OUTPUT_DIR=s3://...: the day's folder as S3 holds it, its outcomes pushed as each shard finishes.
    with private_files(), run_folder(paths, settings) as folder:
        return _send_wave(paths, settings, at, adhoc is not None, folder)


def _send_wave(paths: RunPaths, settings: Settings, at: datetime, adhoc: bool, folder: RunFolder) -> dict[str, int]:
    """The wave's work on its run folder."""
    logger = get_run_logger()
    # 1. The wave, from the committed plan's send shards; all shards, for the day's counts by channel.
    waves = planned_waves(paths)
    wave = find_wave(waves, at)
    shards = [s for w in waves for s in w.shards]
    # 2. What an earlier attempt of this wave left, so a message it sent is still counted as sent.
    earlier = read_outcomes(paths, wave.shards)
    # 3. The wave through the ledger: it goes now (its time has come, or long passed: a re-run); late is said.
    check_lease(settings)
    run_id = flow_run_id()
    delivery = deliver_wave(
        paths, wave, settings, run_id, start_send_progress(wave.messages), wave.messages, SendClock(), folder.push
    )
    ledger = ledger_report(settings, run_id, paths)
    # 4. Its outcomes into the day's summary; one wave at a time rewrites it.
    with paths.exclusive(on_wait=lambda: logger.info("Waiting for another run of the day to finish its report")):
        # in S3: what this wave wrote goes up, then what other waves reported since comes down before the merge
        folder.push()
        folder.pull(() if adhoc else ("delivery/", "summary.json"))
        record = settle_wave(paths, wave.at, wave.shards, earlier, delivery[FAILED_SHARDS])
        if adhoc:
            _report_adhoc_wave(paths, shards)
        else:
            logger.info(report_wave(paths, shards, ledger).headline())
        folder.push()
    if delivery[FAILED_SHARDS]:
        raise ShardsFailedError(delivery)
    return record.delivery


def _report_adhoc_wave(paths: RunPaths, shards: list[int]) -> None:
    """An ad-hoc campaign's summary counts what all its waves delivered."""
    summary = AdhocSummary.model_validate_json(paths.summary.read_text(encoding="utf-8"))
    delivery = wave_totals(read_wave_records(paths))
    summary = summary.model_copy(
        update={"delivery": dict(delivery), "sent": int(delivery.get(DeliveryOutcome.SENT, 0))}
    )
    get_run_logger().info(report_adhoc(summary, paths, shards).headline())
