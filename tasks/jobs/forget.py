"""Forget a customer (``loyalty forget CUSTOMER_ID``): erase them from everything the engine keeps, and make sure
a re-import of their data is never contacted.

One orchestration, in this order:

1. the run folders (``output_dir``, every day, ad-hoc campaign, order-updates run and ``earlier/`` copy): every
   Parquet or CSV file with a ``customer_id`` column (snapshots, quarantine, profiles, plans, shards, rendered
   messages, coupon registries) is rewritten without the customer's rows (temporary file, then rename); their
   outbox files are deleted and the outbox index rewritten without them. The addresses those rows held are
   kept in memory for step 2 only;
2. the suppression list: the customer's id goes (their unsubscribes, the addresses they were messaged at),
   and every address they had is suppressed on its channel for good (keyed hash, ``Topic.ALL``, reason
   ``forgotten``): a re-import under any id is skipped as ``suppressed``;
3. the state backend: their send history rows and the calls support recorded with them; their id on the coupon
   codes they were given (the codes stay: an order may still carry one);
4. the send ledger: their id is blanked, the idempotency keys stay, so nothing already sent goes again;
5. the articles they were given.

The summary counts what was erased; it names no address and no name (the customer id is the operator's own).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from pydantic import BaseModel

from tasks.consent.suppression import SuppressionList
from tasks.kernel.aws import dynamodb_client
from tasks.kernel.enums import Channel
from tasks.kernel.paths import RunPaths
from tasks.kernel.runstore import run_folder
from tasks.kernel.settings import Settings
from tasks.ledger.backend import open_ledger
from tasks.render.articles import ArticleHistory
from tasks.render.outbox import message_stem
from tasks.state.backend import open_state

# The columns of a run file that hold a customer's addresses, by channel.
ADDRESS_COLUMNS = {"email": Channel.EMAIL, "phone": Channel.SMS}


class ForgetSummary(BaseModel):
    """What forgetting a customer erased (counts only)."""

    files_rewritten: int
    rows_removed: int
    outbox_files_deleted: int
    addresses_suppressed: int
    suppression_rows: int
    history_rows: int
    coupon_links: int
    ledger_links: int
    articles: int
    call_records: int = 0
    survey_answers: int = 0
    preferences: int = 0

    def lines(self) -> list[str]:
        """What was erased, one line each, as the CLI prints it."""
        return [
            f"run files rewritten without the customer: {self.files_rewritten} ({self.rows_removed} rows removed)",
            f"outbox messages deleted: {self.outbox_files_deleted} files",
            f"addresses suppressed for good (keyed hashes, every topic): {self.addresses_suppressed}",
            f"suppression rows that held the id: {self.suppression_rows}",
            f"send history rows erased: {self.history_rows}",
            f"coupon codes unlinked: {self.coupon_links}",
            f"ledger entries unlinked (keys kept, nothing is resent): {self.ledger_links}",
            f"articles given erased: {self.articles}",
            f"support call records erased: {self.call_records}",
            f"survey answers erased: {self.survey_answers}",
            f"preference records erased: {self.preferences}",
        ]


def forget_customer(settings: Settings, customer_id: str) -> ForgetSummary:
    """Erase a customer from the run folders, the state backend, the ledger and the articles; suppress their addresses."""
    addresses: dict[Channel, set[str]] = {channel: set() for channel in Channel}
    files = rows = 0
    removed_from: dict[Path, int] = {}
    # Run folders in S3 (LOYALTY_OUTPUT_DIR=s3://...): all of them come down, the erased files go back up and
    # the deleted ones are deleted there. Rare and whole: an erasure reads every run folder either way.
    with run_folder(RunPaths(root=settings.output_dir), settings):
        for path in run_files(settings.output_dir):
            removed = removed_from[path] = _rewrite_without(path, customer_id, addresses)
            files, rows = files + (removed > 0), rows + removed
        deleted = _clear_outboxes(settings.output_dir, customer_id, removed_from)

    suppressions = SuppressionList.for_settings(settings)
    suppression_rows = suppressions.forget(customer_id, {c: sorted(a) for c, a in addresses.items()})
    state = open_state(settings, dynamodb_client)
    history = state.history.forget_customer(customer_id)
    coupons = state.coupons.forget_customer(customer_id)
    calls = state.calls.forget_customer(customer_id)
    answers = state.surveys.forget_customer(customer_id)
    preferences = state.preferences.forget_customer(customer_id)
    ledger = open_ledger(settings, dynamodb_client)
    try:
        ledger_links = ledger.forget_customer(customer_id)
    finally:
        ledger.close()
    articles = ArticleHistory.for_settings(settings).forget(customer_id)
    return ForgetSummary(
        files_rewritten=files,
        rows_removed=rows,
        outbox_files_deleted=deleted,
        addresses_suppressed=sum(len(a) for a in addresses.values()),
        suppression_rows=suppression_rows,
        history_rows=history,
        coupon_links=coupons,
        ledger_links=ledger_links,
        articles=articles,
        call_records=calls,
        survey_answers=answers,
        preferences=preferences,
    )


def run_files(output_dir: Path) -> list[Path]:
    """The Parquet and CSV files under the run folders."""
    if not output_dir.exists():
        return []
    return sorted(p for p in output_dir.rglob("*") if p.suffix in {".parquet", ".csv"} and p.is_file())


def _rewrite_without(path: Path, customer_id: str, addresses: dict[Channel, set[str]]) -> int:
    """Rewrite a run file without the customer's rows (collecting their addresses); return how many rows went."""
    if path.suffix == ".parquet":
        if "customer_id" not in pq.read_schema(path).names:
            return 0
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "customer_id" not in frame.columns:
            return 0
    theirs = (frame["customer_id"].astype(str) == customer_id).to_numpy()
    if not theirs.any():
        return 0
    for column, channel in ADDRESS_COLUMNS.items():
        if column in frame.columns:
            addresses[channel] |= {str(a) for a in frame.loc[theirs, column] if isinstance(a, str) and a.strip()}
    kept = frame.loc[~theirs]
    partial = path.with_name(f".{path.name}.partial")
    if path.suffix == ".parquet":
        kept.to_parquet(partial, index=False)
    else:
        kept.to_csv(partial, index=False)
    partial.replace(path)
    return int(theirs.sum())


def _clear_outboxes(output_dir: Path, customer_id: str, removed_from: dict[Path, int]) -> int:
    """Delete the customer's messages from every outbox and their rows from its index; return files deleted.

    A message that was rendered but not written to the outbox (``Settings.outbox_sample``) has no file: the
    index's count of rendered messages still drops by every message of theirs the run's rendered shards held
    (``removed_from``: rows removed per run file).
    """
    if not output_dir.exists():
        return 0
    deleted = 0
    safe = message_stem("", customer_id, "")[1:-1]  # the file name part ``message_stem`` makes of the id
    for outbox in (p for p in output_dir.rglob("outbox") if p.is_dir()):
        for message in outbox.glob(f"*/{safe}-*"):
            if message.suffix in {".txt", ".html"} and message.is_file():
                message.unlink()
                deleted += 1
        index = outbox / "index.html"
        if index.exists():
            shards = RunPaths(root=outbox.parent).rendered_shard(0).parent
            rendered = sum(n for path, n in removed_from.items() if path.parent == shards)
            _drop_index_rows(index, customer_id, rendered)
    return deleted


def _drop_index_rows(index: Path, customer_id: str, rendered: int) -> None:
    """Drop the customer's rows from an outbox index and count them out of its totals; ``rendered``: their
    messages in the run's rendered shards (none where the run kept no shards: its rows are counted instead)."""
    page = index.read_text(encoding="utf-8")
    row = re.compile(r"<tr><td>[^<]*</td><td>" + re.escape(html.escape(customer_id)) + r"</td>.*?</tr>", re.DOTALL)
    kept, removed = row.subn("", page)
    rendered = max(rendered, removed)
    if not rendered:
        return
    kept = re.sub(
        r"<p>(\d+) messages rendered\.</p>",
        lambda m: f"<p>{int(m.group(1)) - removed} messages rendered.</p>",
        kept,
        count=1,
    )
    kept = re.sub(  # a sampled outbox: "Showing 40 of 748,470 rendered messages: ..."
        r"<p>Showing ([\d,]+) of ([\d,]+) rendered messages",
        lambda m: f"<p>Showing {_less(m.group(1), removed)} of {_less(m.group(2), rendered)} rendered messages",
        kept,
        count=1,
    )
    index.write_text(kept, encoding="utf-8")


def _less(number: str, by: int) -> str:
    """A number as the index writes it ("748,470"), less ``by``, written the same way."""
    return f"{int(number.replace(',', '')) - by:,}"
