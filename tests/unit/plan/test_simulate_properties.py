"""The plan's promises over weeks, for any shop: hypothesis draws small shops and campaign mixes, simulates 60 days.

For every customer and day of every drawn example:
- at most ``marketing_per_day`` marketing messages a day and ``marketing_per_week`` in any 7 days, counted on
  the days they go out (a message is one (customer, campaign, step, occurrence), however many channels);
- never capped while there was room: a ``frequency_cap`` row only on a day the customer's budget was full;
- one holdout decision per occurrence, and a held-out occurrence is never sent;
- no coupon sent after its last valid day;
- an occasion's greeting (a birthday or holiday step at offset 0) only on its day;
- a marketing unsubscribe stops marketing on that channel and never a transactional message.

Each checker returns the rows that break its rule, so a failure shows them (customer, day, rule); the checkers
are tested on hand-made frames first (a checker that cannot fail proves nothing).

An example costs about a minute (60 simulated days, each validating, profiling and planning the shop), so the
property runs a few examples and does not shrink a failure: the first failing example is reported as drawn, with
the shop's seed in its notes, and hypothesis' example database replays it first on the next run.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import pandas as pd
from hypothesis import HealthCheck, Phase, given, note, settings, target
from hypothesis import strategies as st

from tasks.data.sources import load_raw
from tasks.demo.synth import generate_shop, write_shop
from tasks.kernel.enums import MessageKind, Table
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.plan.campaigns import BirthdayTrigger, Campaign, HolidayTrigger, daily_campaigns, load_catalog
from tasks.plan.simulate import OptOut, simulate

CATALOG = daily_campaigns(load_catalog(PROJECT_ROOT / "campaigns"))
KEY = b"property-test-key-0123456789abcdef"
MESSAGE = ["customer_id", "campaign", "step", "occurrence"]
DAYS = 60
HISTORY = 150  # days of the drawn shop's past, ending on the simulation's last day
INTERFACE = (
    "date",
    "customer_id",
    "campaign",
    "step",
    "channel",
    "kind",
    "occurrence",
    "decision",
    "reason",
    "yields_to",
    "coupon_valid_until",
)


# --- the rules, each a checker returning the rows that break it ------------------------------------------------


def missing_columns(rows: pd.DataFrame) -> list[str]:
    """The simulation's promised columns its rows lack (every rule below reads some of them)."""
    return [c for c in INTERFACE if c not in rows.columns]


def _marketing_sends(rows: pd.DataFrame) -> pd.DataFrame:
    sent = rows.loc[(rows["decision"] == "send") & (rows["kind"] == MessageKind.MARKETING.value)]
    return sent.drop_duplicates(MESSAGE)


def over_the_budget(rows: pd.DataFrame, per_day: int, per_week: int) -> pd.DataFrame:
    """(customer_id, date, count, window) where a day or the 7 days ending on it went over the budget."""
    sent = _marketing_sends(rows)
    daily = sent.groupby(["customer_id", "date"]).size().rename("count").reset_index()
    out = []
    for customer, days in daily.groupby("customer_id"):
        series = days.set_index(pd.to_datetime(days["date"]))["count"].resample("D").sum()
        week = series.rolling(7, min_periods=1).sum()
        # a window can only go over on a day something goes out: report those days, not the quiet ones after
        bad = (series > per_day) | ((series > 0) & (week > per_week))
        for day in series.index[bad.to_numpy()]:
            out.append((customer, day.date().isoformat(), int(series[day]), int(week[day])))
    return pd.DataFrame(out, columns=["customer_id", "date", "count", "window"])


def capped_with_room(rows: pd.DataFrame, per_day: int, per_week: int) -> pd.DataFrame:
    """``frequency_cap`` rows of a customer-day whose budget was not full: fewer than ``per_day`` marketing messages
    went that day and fewer than ``per_week`` in the 7 days ending that day (a holdout is not a send: it takes no room).
    """
    sent = _marketing_sends(rows)
    capped = rows.loc[rows["reason"] == "frequency_cap"]
    bad = []
    for row in capped.itertuples():
        mine = pd.to_datetime(sent.loc[sent["customer_id"] == row.customer_id, "date"])
        day = pd.Timestamp(str(row.date))
        today = int((mine == day).sum())
        week = int(((mine > day - timedelta(days=7)) & (mine <= day)).sum())
        if today < per_day and week < per_week:
            bad.append(row.Index)
    return capped.loc[bad]


def holdouts_decided_twice(rows: pd.DataFrame) -> pd.DataFrame:
    """Occurrences recorded as held out on more than one day, or held out and sent."""
    held = rows.loc[rows["decision"] == "holdout"]
    days = held.groupby(["customer_id", "campaign", "occurrence"])["date"].nunique()
    twice = days.loc[days > 1].reset_index()
    sent = rows.loc[rows["decision"] == "send", ["customer_id", "campaign", "occurrence"]].drop_duplicates()
    both = held[["customer_id", "campaign", "occurrence"]].drop_duplicates().merge(sent)
    return pd.concat([twice[["customer_id", "campaign", "occurrence"]], both], ignore_index=True)


def expired_coupons(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows sent with a coupon whose last valid day is before the day they go out."""
    sent = rows.loc[(rows["decision"] == "send") & rows["coupon_valid_until"].notna()]
    return sent.loc[sent["coupon_valid_until"].astype(str) < sent["date"].astype(str)]


def late_greetings(rows: pd.DataFrame, catalog: dict[str, Campaign]) -> pd.DataFrame:
    """Greetings on an occasion (birthday or holiday, offset 0) sent on another day than the occasion."""
    on_the_day = {
        (name, step.step)
        for name, campaign in catalog.items()
        if isinstance(campaign.trigger, BirthdayTrigger | HolidayTrigger)
        for step in campaign.steps
        if step.offset_days == 0
    }
    sent = rows.loc[rows["decision"] == "send"]
    greeting = [(c, int(s)) in on_the_day for c, s in zip(sent["campaign"], sent["step"], strict=True)]
    sent = sent.loc[greeting]
    return sent.loc[sent["date"] != sent["occurrence"]]


def unsubscribe_broken(rows: pd.DataFrame, opt_outs: list[OptOut]) -> pd.DataFrame:
    """After a marketing opt-out: marketing still sent on that channel, or a transactional message suppressed."""
    bad = []
    for since, customer, channel, topic in opt_outs:
        mine = rows.loc[
            (rows["customer_id"] == customer) & (rows["channel"] == channel) & (rows["date"] >= since.isoformat())
        ]
        bad.append(mine.loc[(mine["kind"] == "marketing") & (mine["decision"] == "send")])
        if topic == "marketing":
            bad.append(mine.loc[(mine["kind"] == "transactional") & (mine["reason"] == "suppressed")])
    return pd.concat(bad) if bad else rows.iloc[0:0]


# --- the checkers can fail --------------------------------------------------------------------------------------


def _rows(*rows: tuple[str, str, str, int, str, str, str, str]) -> pd.DataFrame:
    columns = ["date", "customer_id", "campaign", "step", "occurrence", "kind", "decision", "reason"]
    frame = pd.DataFrame(list(rows), columns=columns)
    return frame.assign(channel="email", coupon_valid_until=None, yields_to="")


def test_the_budget_checkers_see_two_messages_on_a_day_four_in_a_week_and_a_cap_with_room() -> None:
    two = _rows(
        ("2027-03-01", "C1", "a", 1, "2027-03-01", "marketing", "send", ""),
        ("2027-03-01", "C1", "b", 1, "2027-03-01", "marketing", "send", ""),
    )
    four = _rows(*[(f"2027-03-0{d}", "C1", "a", 1, f"2027-03-0{d}", "marketing", "send", "") for d in (1, 3, 5, 7)])
    room = _rows(("2027-03-01", "C1", "a", 1, "2027-03-01", "marketing", "deferred", "frequency_cap"))
    # two channels of one message are one message; a transactional one is outside the budget
    one = _rows(
        ("2027-03-01", "C1", "a", 1, "2027-03-01", "marketing", "send", ""),
        ("2027-03-01", "C1", "t", 1, "2027-03-01", "transactional", "send", ""),
    )
    one = pd.concat([one, one.iloc[:1].assign(channel="sms")], ignore_index=True)

    assert list(over_the_budget(two, 1, 3)["date"]) == ["2027-03-01"]
    assert list(over_the_budget(four, 1, 3)["date"]) == ["2027-03-07"]
    assert over_the_budget(four.iloc[:3], 1, 3).empty
    assert over_the_budget(one, 1, 3).empty
    assert len(capped_with_room(room, 1, 3)) == 1


def test_a_cap_is_judged_by_the_day_and_the_week_ending_on_it_and_a_holdout_takes_no_room() -> None:
    week_full = _rows(
        *[(f"2027-03-0{d}", "C1", "a", 1, f"2027-03-0{d}", "marketing", "send", "") for d in (1, 3, 5)],
        ("2027-03-06", "C1", "b", 1, "2027-03-06", "marketing", "deferred", "frequency_cap"),
    )
    sends_after_the_cap = _rows(
        ("2027-03-01", "C1", "b", 1, "2027-03-01", "marketing", "deferred", "frequency_cap"),
        *[(f"2027-03-0{d}", "C1", "a", 1, f"2027-03-0{d}", "marketing", "send", "") for d in (2, 4, 6)],
    )
    held_out = _rows(
        ("2027-03-01", "C1", "a", 1, "2027-03-01", "marketing", "holdout", "holdout"),
        ("2027-03-01", "C1", "b", 1, "2027-03-01", "marketing", "deferred", "frequency_cap"),
    )

    assert capped_with_room(week_full, 1, 3).empty
    assert list(capped_with_room(sends_after_the_cap, 1, 3)["date"]) == ["2027-03-01"]
    assert list(capped_with_room(held_out, 1, 3)["campaign"]) == ["b"]


def test_the_other_checkers_see_a_second_holdout_an_expired_coupon_a_late_greeting_and_a_broken_unsubscribe() -> None:
    held = _rows(
        ("2027-03-01", "C1", "win_back", 1, "2027-02-28", "marketing", "holdout", "holdout"),
        ("2027-03-02", "C1", "win_back", 1, "2027-02-28", "marketing", "holdout", "holdout"),
    )
    expired = _rows(("2027-03-02", "C1", "birthday", 4, "2027-02-26", "marketing", "send", "")).assign(
        coupon_valid_until="2027-03-01"
    )
    late = _rows(("2027-03-09", "C1", "womens_day", 2, "2027-03-08", "marketing", "send", ""))
    broken = _rows(("2027-03-05", "C1", "service_recovery", 1, "2027-03-04", "transactional", "skipped", "suppressed"))

    held_then_sent = pd.concat(
        [held.iloc[:1], _rows(("2027-03-20", "C1", "win_back", 2, "2027-02-28", "marketing", "send", ""))]
    )
    on_time = _rows(("2027-03-08", "C1", "womens_day", 2, "2027-03-08", "marketing", "send", ""))
    marketing_after = _rows(("2027-03-05", "C1", "win_back", 1, "2027-03-04", "marketing", "send", ""))
    unsubscribed = [(date(2027, 3, 1), "C1", "email", "marketing")]

    assert len(holdouts_decided_twice(held)) == 1
    assert len(holdouts_decided_twice(held_then_sent)) == 1
    assert holdouts_decided_twice(held.iloc[:1]).empty
    assert len(expired_coupons(expired)) == 1
    assert expired_coupons(expired.assign(coupon_valid_until="2027-03-02")).empty
    assert len(late_greetings(late, CATALOG)) == 1
    assert late_greetings(on_time, CATALOG).empty
    assert len(unsubscribe_broken(broken, unsubscribed)) == 1
    assert len(unsubscribe_broken(marketing_after, unsubscribed)) == 1
    assert unsubscribe_broken(marketing_after, [(date(2027, 3, 6), "C1", "email", "marketing")]).empty
    assert unsubscribe_broken(broken.assign(reason="", decision="send"), unsubscribed).empty


def test_rows_without_the_promised_columns_are_named_not_a_key_error() -> None:
    old = _rows(("2027-03-01", "C1", "a", 1, "2027-03-01", "marketing", "send", "")).drop(
        columns=["kind", "coupon_valid_until"]
    )

    assert missing_columns(old) == ["kind", "coupon_valid_until"]


# --- the property -----------------------------------------------------------------------------------------------


HOLIDAYS = ("womens_day", "mens_day")
SCHEDULES = ("weekly_sale", "recommendations_digest")  # they reach most customers: the budget gets busy
OTHERS = tuple(sorted(set(CATALOG) - {"birthday", *HOLIDAYS, *SCHEDULES}))


@st.composite
def campaign_mixes(draw: st.DrawFn) -> dict[str, Campaign]:
    """At least four daily campaigns with drawn priorities, holdouts and lateness: a birthday, a holiday, a schedule
    and one or more of the rest (win-back, welcome, points, cart, ...)."""
    chosen = {"birthday", draw(st.sampled_from(HOLIDAYS)), draw(st.sampled_from(SCHEDULES))}
    chosen |= draw(st.sets(st.sampled_from(OTHERS), min_size=1, max_size=4))
    mix = {}
    for name in sorted(chosen):
        campaign = CATALOG[name]
        update: dict[str, object] = {
            "priority": draw(st.integers(0, 100)),
            "max_delay_days": draw(st.integers(0, 30)),
        }
        if campaign.kind is MessageKind.MARKETING:
            update["holdout_share"] = draw(st.sampled_from([0.0, 0.1, 0.3, 0.5]))
        mix[name] = campaign.model_copy(update=update)
    return mix


def _show(rule: str, bad: pd.DataFrame) -> str:
    return f"{rule}: {len(bad)} rows\n{bad.head(20).to_string()}"


@settings(
    max_examples=3,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target),  # no shrinking: an example costs a minute
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 10_000),
    customers=st.integers(25, 60),
    # most 60-day spans cross 23 February and 8 March, some neither
    start=st.dates(date(2026, 12, 20), date(2027, 3, 5)),
    mix=campaign_mixes(),
    data=st.data(),
)
def test_over_sixty_days_every_promise_holds(
    seed: int, customers: int, start: date, mix: dict[str, Campaign], data: st.DataObject
) -> None:
    end = start + timedelta(days=DAYS - 1)
    note(
        f"shop: generate_shop(customers={customers}, days={HISTORY}, seed={seed}, end={end}); simulated {start}..{end}"
    )
    note(f"campaigns: { {n: (c.priority, c.holdout_share, c.max_delay_days) for n, c in mix.items()} }")
    shop = generate_shop(customers=customers, days=HISTORY, seed=seed, end=end)
    people = shop[Table.CUSTOMERS]
    # unsubscribes from those who had subscribed (anyone else gets no marketing anyway)
    subscribed = sorted(
        (str(customer), channel)
        for channel in ("email", "sms")
        for customer in people.loc[people[f"{channel}_opt_in"].astype(bool), "customer_id"]
    )
    opt_outs: list[OptOut] = [
        (start + timedelta(days=data.draw(st.integers(0, DAYS - 1))), customer, channel, "marketing")
        for customer, channel in data.draw(st.lists(st.sampled_from(subscribed), max_size=4, unique=True))
    ]
    note(f"opt-outs: {opt_outs}")
    budget = Settings()
    per_day, per_week = budget.marketing_per_day, budget.marketing_per_week

    with TemporaryDirectory() as folder:
        write_shop(shop, Path(folder), fmt="parquet")
        rows = simulate(load_raw(folder), mix, start, end, budget, KEY, opt_outs=opt_outs)

    gaps = missing_columns(rows)
    assert not gaps, f"simulate's rows lack the columns {gaps} the promises are read from"
    sent = rows.loc[rows["decision"] == "send"].drop_duplicates(MESSAGE)["campaign"].value_counts()
    note(f"messages sent per campaign: {sent.to_dict()}")
    target(float(len(sent)), label="campaigns that sent")
    assert len(sent), "nothing was sent in 60 days: the example proves nothing"
    broken = {
        "a. over the marketing budget (a day, or the 7 days ending on it)": over_the_budget(rows, per_day, per_week),
        "b. frequency_cap on a customer-day with room in the budget": capped_with_room(rows, per_day, per_week),
        "c. an occurrence held out on two days, or held out and sent": holdouts_decided_twice(rows),
        "d. a coupon sent after its last valid day": expired_coupons(rows),
        "e. an occasion's greeting sent on another day": late_greetings(rows, mix),
        "f. marketing sent after a marketing unsubscribe, or a transactional message suppressed by it": (
            unsubscribe_broken(rows, opt_outs)
        ),
    }
    shown = [_show(rule, bad) for rule, bad in broken.items() if not bad.empty]
    assert not shown, "\n\n".join(shown)
