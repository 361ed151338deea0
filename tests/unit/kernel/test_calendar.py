"""The send clock: a real run waits for each wave; a simulated one jumps to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.kernel.calendar import SendClock

T0 = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)


class FakeTime:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_a_real_clock_waits_for_each_wave_and_never_for_a_past_one() -> None:
    fake = FakeTime(T0)
    clock = SendClock(sleep=fake.sleep, now=lambda: fake.now)
    waits: list[float] = []

    first = clock.wait_for(T0 + timedelta(hours=4), on_wait=waits.append)  # 07:00: Moscow's 10:00
    second = clock.wait_for(T0 + timedelta(hours=6), on_wait=waits.append)  # 09:00: London's 10:00
    late = clock.wait_for(T0, on_wait=waits.append)  # a wave whose time has passed goes now

    assert (first, second, late) == (T0 + timedelta(hours=4), T0 + timedelta(hours=6), T0 + timedelta(hours=6))
    assert fake.slept == waits == [4 * 3600, 2 * 3600]


def test_a_simulated_clock_jumps_to_each_wave_without_waiting_and_never_goes_back() -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError("a simulated clock must not sleep")

    clock = SendClock(T0, sleep=no_sleep)

    assert clock.wait_for(T0 + timedelta(hours=4)) == T0 + timedelta(hours=4)
    assert clock.wait_for(T0 + timedelta(hours=1)) == T0 + timedelta(hours=4)
    late = SendClock(T0 + timedelta(hours=20), sleep=no_sleep)  # a simulated late run sends when it runs
    assert late.wait_for(T0 + timedelta(hours=4)) == T0 + timedelta(hours=20)
