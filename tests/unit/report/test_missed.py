"""What a day planned and never sent: the latest run's word, the ledger's final one, and how to replay it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date

import pandas as pd

from tasks.kernel.enums import SendStatus
from tasks.report.missed import RunRecord, missed_groups, missed_messages


def _run(plan: list[tuple[str, str, str, str]], outcomes: Sequence[tuple[str, str]] = ()) -> RunRecord:
    """Plan rows (key, channel, decision, reason) of the birthday campaign, and delivery outcomes (key, outcome)."""
    frame = pd.DataFrame(plan, columns=["idempotency_key", "channel", "decision", "reason"]).assign(campaign="birthday")
    return RunRecord(plan=frame, outcomes=pd.DataFrame(list(outcomes), columns=["key", "outcome"]))


def _ledger(held: dict[str, SendStatus]) -> Callable[[Iterable[str]], dict[str, SendStatus]]:
    def statuses(keys: Iterable[str]) -> dict[str, SendStatus]:
        return {k: held[k] for k in keys if k in held}

    return statuses


def _reasons(runs: list[RunRecord], held: dict[str, SendStatus]) -> dict[str, str]:
    missed = missed_messages(runs, _ledger(held))
    return dict(zip(missed["idempotency_key"], missed["reason"], strict=True))


def test_parked_sms_are_missed_and_the_sent_email_is_not() -> None:
    run = _run(
        [("e1", "email", "send", ""), ("s1", "sms", "send", ""), ("s2", "sms", "send", "")],
        [("e1", "sent"), ("s1", "parked"), ("s2", "parked")],
    )

    groups = missed_groups(date(2024, 3, 3), missed_messages([run], _ledger({"e1": SendStatus.SENT})))

    assert [(g.channel, g.reason, g.messages, g.replay) for g in groups] == [
        ("sms", "parked", 2, "loyalty backfill --from 2024-03-03 --to 2024-03-03 --campaign birthday --channel sms")
    ]


def test_a_wave_that_never_ran_is_not_attempted_and_a_ledger_failure_is_failed_without_a_replay() -> None:
    run = _run([("s1", "sms", "send", ""), ("s2", "sms", "send", "")])

    groups = missed_groups(date(2024, 3, 3), missed_messages([run], _ledger({"s2": SendStatus.FAILED})))

    assert [(g.reason, g.messages, g.replay is None) for g in groups] == [
        ("failed", 1, True),
        ("not_attempted", 1, False),
    ]


def test_a_held_back_row_keeps_the_reason_of_the_run_before_and_a_later_send_clears_it() -> None:
    parked = _run([("e1", "email", "send", ""), ("s1", "sms", "send", "")], [("e1", "parked"), ("s1", "parked")])
    sms_replay = _run([("e1", "email", "deferred", "held_back"), ("s1", "sms", "send", "")], [("s1", "sent")])
    only_held = _run([("e2", "email", "deferred", "held_back")])

    assert _reasons([parked, sms_replay], {"s1": SendStatus.SENT}) == {"e1": "parked"}
    assert _reasons([only_held], {}) == {"e2": "held_back"}


def test_a_message_a_later_day_sent_is_not_missed_and_a_replan_that_stopped_it_gives_its_reason() -> None:
    first = _run([("s1", "sms", "send", ""), ("s2", "sms", "send", "")], [("s1", "parked"), ("s2", "parked")])
    replan = _run([("s1", "sms", "send", ""), ("s2", "sms", "skipped", "too_late")])

    # s1 went out with the next day's plan: the ledger holds it
    assert _reasons([first, replan], {"s1": SendStatus.SENT}) == {"s2": "too_late"}
