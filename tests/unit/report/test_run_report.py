"""The run summary: its headline, the message counts in reading order, the markdown and the outbox entries."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd

from tasks.data.snapshot import SnapshotSummary
from tasks.kernel.paths import RunPaths
from tasks.plan.planner import PlanSummary
from tasks.report.run_report import RunSummary, build_summary, collect_outbox, summary_markdown

AS_OF = date(2026, 3, 1)
SNAPSHOT = SnapshotSummary(
    rows={
        "customers": {"input": 5, "clean": 4, "quarantined": 1, "future": 0},
        "orders": {"input": 9, "clean": 8, "quarantined": 0, "future": 1},
    },
    quarantined_by_reason={"customers": {"invalid_email": 1}},
)
PLAN = PlanSummary(
    planned=10,
    to_send=6,
    by_decision={"send": 6, "holdout": 1, "deferred": 1, "skipped": 2},
    deferred_by_reason={"quiet_hours": 1},
    skipped_by_reason={"no_consent": 1, "duplicate": 1},
    shards=[0, 1],
    to_send_by_campaign={"win_back": 4, "birthday": 2},
)


def _write_outcomes(paths: RunPaths, shard: int, rows: list[tuple[str, str]]) -> None:
    paths.delivery_shard(shard).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["channel", "outcome"]).to_parquet(paths.delivery_shard(shard), index=False)


def _summary(paths: RunPaths, dry_run: bool = False, delivery: Counter[str] | None = None) -> RunSummary:
    return build_summary(
        AS_OF,
        dry_run,
        paths,
        SNAPSHOT,
        {"lapsed": 3, "vip": 1},
        PLAN,
        rendered=6,
        delivery=delivery if delivery is not None else Counter(sent=5, failed=1),
        ledger={"unknown_in_ledger": 2, "resent_transactional": 0},
    )


def test_the_summary_gathers_every_steps_numbers_and_counts_sends_per_channel_from_the_outcome_files(
    tmp_path: Path,
) -> None:
    paths = RunPaths(tmp_path / "2026-03-01")
    _write_outcomes(paths, 0, [("email", "sent"), ("email", "sent"), ("sms", "sent"), ("email", "failed")])
    _write_outcomes(paths, 1, [("email", "sent"), ("sms", "sent")])  # shard 2 never ran: no file

    summary = _summary(paths)

    assert (summary.customers_loaded, summary.quarantined) == (4, 1)
    assert (summary.planned, summary.to_send, summary.rendered, summary.sent, summary.failed) == (10, 6, 6, 5, 1)
    assert (summary.holdout, summary.deferred, summary.skipped) == (1, 1, 2)
    assert (summary.already_sent, summary.parked, summary.unknown_in_ledger) == (0, 0, 2)
    assert summary.sent_by_channel == {"email": 3, "sms": 2}
    assert summary.outbox_index == str(paths.outbox / "index.html")


def test_the_headline_says_dry_run_nothing_new_or_how_many_were_sent(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "2026-03-01")

    dry = _summary(paths, dry_run=True, delivery=Counter())
    again = _summary(paths, delivery=Counter(already_sent=5))
    sent = _summary(paths)

    assert dry.headline() == f"DRY RUN: nothing was sent. 6 messages rendered to {paths.outbox / 'index.html'}"
    assert dry.sent_by_channel == {}
    # five found in the ledger and one planned twice: six sent earlier
    assert again.headline() == "Nothing new to send: 6 messages were sent earlier (the ledger remembers)."
    assert sent.headline() == "Sent 5 new messages (0 already sent earlier, 1 failed)."


def test_the_message_counts_read_in_order_with_campaigns_channels_and_reasons_where_they_belong(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "2026-03-01")
    _write_outcomes(paths, 0, [("email", "sent"), ("sms", "sent")])

    names = [name for name, _ in _summary(paths).message_counts()]

    assert names[:6] == ["planned", "to_send", "to send: win_back", "to send: birthday", "rendered", "sent"]
    assert names[6:8] == ["sent: email", "sent: sms"]
    assert names[-6:] == [
        "skipped",
        "unknown_in_ledger",
        "resent_transactional",
        "deferred: quiet_hours",
        "skipped: no_consent",
        "skipped: duplicate",
    ]


def test_one_channel_has_no_per_channel_lines(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "2026-03-01")
    _write_outcomes(paths, 0, [("email", "sent")])

    assert not [name for name, _ in _summary(paths).message_counts() if name.startswith("sent: ")]


def test_the_markdown_shows_the_data_the_quarantine_reasons_the_segments_and_the_counts(tmp_path: Path) -> None:
    markdown = summary_markdown(_summary(RunPaths(tmp_path / "2026-03-01")))

    assert markdown.startswith("# Daily run 2026-03-01\n\n**Sent 5 new messages")
    assert "| orders | 9 | 8 | 0 | 1 |" in markdown
    assert "- customers: invalid_email 1" in markdown
    assert "| lapsed | 3 |" in markdown
    assert "| skipped: duplicate | 1 |" in markdown


def test_a_clean_run_has_no_quarantine_section(tmp_path: Path) -> None:
    clean = SnapshotSummary(
        rows={"customers": {"input": 4, "clean": 4, "quarantined": 0, "future": 0}}, quarantined_by_reason={}
    )
    summary = build_summary(AS_OF, True, RunPaths(tmp_path / "r"), clean, {}, PLAN, 0, Counter())

    assert "Quarantined rows" not in summary_markdown(summary)


def test_the_outbox_entries_are_read_from_every_render_shard(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "2026-03-01")
    for shard, customer in ((0, "C1"), (3, "C2")):
        paths.rendered_shard(shard).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "idempotency_key": [f"k-{customer}"],
                "customer_id": [customer],
                "campaign": ["win_back"],
                "channel": ["email"],
                "locale": ["pl"],
                "html_file": [f"win_back/{customer}-email.html"],
                "text_file": [f"win_back/{customer}-email.txt"],
                "subject": ["not read"],
            }
        ).to_parquet(paths.rendered_shard(shard), index=False)

    entries = collect_outbox(paths, [0, 3])

    assert [(e.key, e.customer_id, e.locale, e.text_file) for e in entries] == [
        ("k-C1", "C1", "pl", "win_back/C1-email.txt"),
        ("k-C2", "C2", "pl", "win_back/C2-email.txt"),
    ]
