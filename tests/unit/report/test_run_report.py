"""The run summary: its headline, the message counts in reading order, the markdown and the outbox entries."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from tasks.data.snapshot import SnapshotSummary
from tasks.kernel.paths import RunPaths
from tasks.plan.planner import PlanSummary
from tasks.report.run_report import (
    RunSummary,
    WaveRecord,
    build_summary,
    collect_outbox,
    merge_outcomes,
    merge_waves,
    read_wave_records,
    settle_wave,
    summary_markdown,
    write_wave_record,
)

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

    listing = collect_outbox(paths, [0, 3])

    assert [(e.key, e.customer_id, e.locale, e.text_file) for e in listing.entries] == [
        ("k-C1", "C1", "pl", "win_back/C1-email.txt"),
        ("k-C2", "C2", "pl", "win_back/C2-email.txt"),
    ]
    assert (listing.rendered, listing.sample) == (2, 0)  # every message has its files


def test_a_sampled_outbox_lists_the_written_messages_out_of_every_rendered_one(tmp_path: Path) -> None:
    # shard 0 wrote the first 2 of its Polish win-back emails, and its only English one; shard 1 wrote all it had
    paths = RunPaths(tmp_path / "2026-03-01")
    rows = [("win_back", "pl", True), ("win_back", "pl", True), ("win_back", "pl", False), ("win_back", "en", True)]
    shards = {0: rows, 1: [("birthday", "ru", True)]}
    for shard, messages in shards.items():
        paths.rendered_shard(shard).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            [
                {
                    "idempotency_key": f"k-{shard}-{n}",
                    "customer_id": f"C{shard}{n}",
                    "campaign": campaign,
                    "channel": "email",
                    "locale": locale,
                    "html_file": f"{campaign}/C{shard}{n}-email.html" if written else "",
                    "text_file": f"{campaign}/C{shard}{n}-email.txt" if written else "",
                }
                for n, (campaign, locale, written) in enumerate(messages)
            ]
        ).to_parquet(paths.rendered_shard(shard), index=False)

    listing = collect_outbox(paths, [0, 1])

    assert sorted(e.key for e in listing.entries) == ["k-0-0", "k-0-1", "k-0-3", "k-1-0"]
    assert (listing.rendered, listing.sample, listing.record) == (5, 2, "render/rendered-*.parquet")


# A day whose waves go as their own send-wave runs: each wave's record, merged into the day's summary.
MORNING = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
EVENING = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


def _outcome_rows(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(key, f"C{n}", "email", outcome, 1, None, None) for n, (key, outcome) in enumerate(rows)],
        columns=["key", "customer_id", "channel", "outcome", "attempts", "provider_id", "reason"],
    )


def test_waves_finishing_in_any_order_add_up_to_the_same_day(tmp_path: Path) -> None:
    # given: the day's summary as the daily run wrote it (nothing sent yet), and two waves' records
    paths = RunPaths(tmp_path / "2026-03-01")
    day = _summary(paths, delivery=Counter())
    morning = WaveRecord(at=MORNING, shards=[1], delivery={"sent": 3})
    evening = WaveRecord(at=EVENING, shards=[2, 3], delivery={"sent": 2, "failed": 1, "failed_shards": 1})
    # when: the evening wave reports first, or the morning one
    one = merge_waves(day, [evening, morning], {"email": 5}, {})
    other = merge_waves(day, [morning, evening], {"email": 5}, {})
    # then: the same day either way, every wave counted, the plan's numbers untouched
    assert one == other
    assert (one.sent, one.failed, one.failed_shards, one.already_sent) == (5, 1, 1, 0)
    assert (one.planned, one.to_send, one.rendered) == (day.planned, day.to_send, day.rendered)
    assert one.headline().startswith("Sent 5 new messages")


def test_a_wave_run_again_replaces_its_record_so_its_messages_count_once(tmp_path: Path) -> None:
    # given: the morning wave sent 3, then was run again by hand (its record rewritten), beside the evening wave
    paths = RunPaths(tmp_path / "2026-03-01")
    write_wave_record(paths, WaveRecord(at=MORNING, shards=[1], delivery={"sent": 2, "retry_later": 1}))
    write_wave_record(paths, WaveRecord(at=EVENING, shards=[2], delivery={"sent": 4}))
    write_wave_record(paths, WaveRecord(at=MORNING, shards=[1], delivery={"sent": 3}))
    # when
    merged = merge_waves(_summary(paths, delivery=Counter()), read_wave_records(paths), {}, {})
    # then: 3 + 4, not 2 + 3 + 4, and the retry that went is no longer pending
    assert [r.at for r in read_wave_records(paths)] == [MORNING, EVENING]
    assert (merged.sent, merged.retry_later) == (7, 0)


def test_each_wave_adds_what_its_ledger_report_found(tmp_path: Path) -> None:
    # given: a summary that already lists 2 unknown ledger entries (an earlier wave's)
    day = _summary(RunPaths(tmp_path / "2026-03-01"))
    # when: the next wave's ledger report expires one more
    merged = merge_waves(day, [], {}, {"unknown_in_ledger": 1, "resent_transactional": 0})
    # then: entries expire once, so they add up
    assert merged.unknown_in_ledger == 3


def test_a_wave_sent_again_keeps_what_its_earlier_attempt_sent(tmp_path: Path) -> None:
    # given: the first attempt sent k1 and k3, failed k4, and left k2 for later (throttled)
    paths = RunPaths(tmp_path / "2026-03-01")
    earlier = _outcome_rows([("k1", "sent"), ("k2", "retry_later"), ("k3", "sent"), ("k4", "failed")])
    # and: the second attempt found k1, k3 and k4 in the ledger and sent k2
    paths.delivery_shard(1).parent.mkdir(parents=True)
    second = [("k1", "already_sent"), ("k2", "sent"), ("k3", "already_sent"), ("k4", "already_sent")]
    _outcome_rows(second).to_parquet(paths.delivery_shard(1), index=False)
    # when
    record = settle_wave.fn(paths, MORNING, [1], {1: earlier}, failed_shards=0)
    # then: each message counted once, as what became of it; the outcome file says the same
    assert record.delivery == {"sent": 3, "failed": 1}
    assert pd.read_parquet(paths.delivery_shard(1))["outcome"].tolist() == ["sent", "sent", "sent", "failed"]
    assert read_wave_records(paths) == [record]


def test_a_message_sent_by_another_run_stays_already_sent(tmp_path: Path) -> None:
    # given: no earlier attempt of this wave recorded anything for k1 (its worker died before writing)
    current = _outcome_rows([("k1", "already_sent"), ("k2", "sent")])
    # when / then: nothing to keep
    assert merge_outcomes(None, current)["outcome"].tolist() == ["already_sent", "sent"]
    earlier = _outcome_rows([("k2", "retry_later")])
    assert merge_outcomes(earlier, current)["outcome"].tolist() == ["already_sent", "sent"]
