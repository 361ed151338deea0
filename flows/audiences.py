"""Audiences for ad platforms, each morning after the daily run: the hashed customer lists a marketer uploads.

Which (segment, platform) pairs: ``LOYALTY_AUDIENCES`` (``lapsed_valuable:meta,google``), or the run's ``pairs``.
The files go into the day's run folder, ``<day>/audiences/<segment>-<platform>.csv`` (with an S3 output, into
the run bucket); who is in them and how each platform hashes is ``tasks/report/audiences.py``. No platform is
called: a marketer uploads the file, or a sync job sends it.
"""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger

from tasks.kernel.calendar import business_date
from tasks.kernel.paths import RunPaths, private_files
from tasks.kernel.runstore import run_folder
from tasks.kernel.settings import Settings
from tasks.report.audiences import AudienceCounts, parse_audiences, write_day_audiences


@flow
def audiences(as_of: date | None = None, pairs: str | None = None) -> list[AudienceCounts]:
    """Write the day's hashed audiences for ad platforms into its run folder, from the day's profile.

    Args:
        as_of: The business date whose run folder to read and write. Default: today in the shop's time zone.
        pairs: segment:platform[,platform][;...] to write. Default: the LOYALTY_AUDIENCES setting.
    """
    settings = Settings()
    as_of = as_of or business_date(settings.shop_timezone)
    wanted = parse_audiences(settings.audiences if pairs is None else pairs)
    logger = get_run_logger()
    if not wanted:
        logger.info("No audiences configured (LOYALTY_AUDIENCES): nothing to write")
        return []
    paths = RunPaths.for_day(settings.output_dir, as_of)
    # The day's folder, one run at a time (a daily run still writing it goes first), synced with S3.
    with private_files(), paths.exclusive(), run_folder(paths, settings):
        # 1. One file per (segment, platform): opted in, not suppressed, not in service recovery, hashed.
        written = write_day_audiences(paths, as_of, settings, wanted)
    # 2. Counts only: no address, no hash is logged.
    for counts in written:
        logger.info(counts.headline())
    return written
