from __future__ import annotations

import pytest

from tasks.kernel.enums import MessageKind
from tasks.kernel.settings import Settings
from tasks.plan.pauses import PAUSED_CAMPAIGNS_VARIABLE, campaign_pauses


def test_a_campaign_named_in_the_variable_or_the_setting_is_paused_whatever_its_kind() -> None:
    asked: list[str] = []

    def read(name: str) -> object:
        asked.append(name)
        return " win_back, birthday ,"

    pauses = campaign_pauses(Settings(paused_campaigns={"order_shipped"}), read)

    assert asked == [PAUSED_CAMPAIGNS_VARIABLE]
    assert pauses.stops("win_back", MessageKind.MARKETING)
    assert pauses.stops("birthday", "marketing")
    assert pauses.stops("order_shipped", MessageKind.TRANSACTIONAL)
    assert not pauses.stops("welcome", MessageKind.MARKETING)


def test_a_list_in_the_variable_works_and_an_unset_one_pauses_nothing() -> None:
    assert campaign_pauses(Settings(), lambda name: ["win_back"]).stops("win_back", MessageKind.MARKETING)
    assert not campaign_pauses(Settings(), lambda name: None).stops("win_back", MessageKind.MARKETING)


def test_an_unreachable_prefect_pauses_every_marketing_campaign_but_no_transactional_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreachable(name: str) -> object:
        raise ConnectionError("Prefect API unreachable")

    pauses = campaign_pauses(Settings(), unreachable)

    assert pauses.stops("welcome", MessageKind.MARKETING)
    assert not pauses.stops("order_shipped", MessageKind.TRANSACTIONAL)
    assert "unreadable" in caplog.text


def test_one_client_reads_every_change_an_operator_makes_during_a_shard(prefect_harness: None) -> None:
    from prefect.variables import Variable

    from tasks.plan.pauses import variable_reader

    Variable.set(PAUSED_CAMPAIGNS_VARIABLE, "", overwrite=True)
    with variable_reader() as read:
        before = campaign_pauses(Settings(), read)
        Variable.set(PAUSED_CAMPAIGNS_VARIABLE, "win_back", overwrite=True)  # the marketer pauses it in the UI
        after = campaign_pauses(Settings(), read)
    Variable.unset(PAUSED_CAMPAIGNS_VARIABLE)

    assert not before.stops("win_back", MessageKind.MARKETING)
    assert after.stops("win_back", MessageKind.MARKETING)
    assert not after.all_marketing
