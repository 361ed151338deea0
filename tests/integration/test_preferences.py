"""The preferences page end to end: the footer's signed link opens a form filled from the stored record (never an
address or a name), a POST checks every field and saves, a tampered link shows nothing; and the next day's plan
honours what was saved: no SMS stops marketing SMS, a pause stops marketing, a topic turned off stops the birthday
greeting, a birthday given on the page brings one, "at most weekly" leaves one marketing message in any 7 days,
and order and service messages go on throughout."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pandas as pd
import pytest
import yaml
from pydantic import SecretStr
from starlette.applications import Starlette

from tasks.consent.tokens import Purpose, preferences_url, purpose_key
from tasks.consent.unsubscribe import make_app
from tasks.data.snapshot import load_snapshot
from tasks.data.sources import load_raw
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.plan.campaigns import Campaign, ScheduleTrigger
from tasks.plan.planner import plan_day
from tasks.plan.simulate import simulate
from tasks.profile.features import profile_customers
from tasks.state.backend import open_state
from tasks.state.preference_snapshot import merge_preferences, preferences_frame
from tasks.state.preferences import Preferences
from tests.conftest import REPO_ROOT
from tests.shops import add_rows, tiny_shop, write_shop

SECRET = "preferences-test-secret-0123456789"
SAVED_AT = datetime(2024, 6, 6, 18, 0, tzinfo=UTC)
FRIDAY = date(2024, 6, 7)


class Client:
    """Calls the ASGI app in-process through httpx."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="https://shop.example.com") as http:
                return await http.request(method, path, data=data)

        return asyncio.run(call())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        output_dir=tmp_path / "output",
        campaigns_dir=tmp_path / "campaigns",
        signing_secret=SecretStr(SECRET),
    )


@pytest.fixture
def client(settings: Settings) -> Client:
    return Client(make_app(settings, clock=lambda: SAVED_AT))


def _link(settings: Settings, customer: str, channel: str = "email", locale: str | None = None) -> str:
    url = preferences_url(purpose_key(settings, Purpose.PREFERENCES), "/preferences", customer, channel, locale)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _hidden(page: str) -> dict[str, str]:
    """The hidden fields of the page's form, as a browser posts them."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))


def _save(client: Client, settings: Settings, customer: str, choices: dict[str, str]) -> httpx.Response:
    """Open the customer's page and post it with ``choices`` (every topic and channel on unless given)."""
    page = client.request("GET", _link(settings, customer))
    everything_on = {f"topic_{t}": "on" for t in ("news_and_sales", "personal_picks", "birthday_holidays")}
    everything_on |= {"channel_email": "on", "channel_sms": "on", "frequency": "usual"}
    form = {k: v for k, v in (everything_on | choices).items() if v != "off"}
    return client.request("POST", "/preferences", _hidden(page.text) | form)


# --- the page ---------------------------------------------------------------------------------------------------


def test_the_page_shows_the_stored_choices_in_the_links_language_and_nothing_else_about_the_customer(
    settings: Settings, client: Client
) -> None:
    open_state(settings).preferences.record(
        Preferences(
            "C1",
            channels_off=frozenset({"sms"}),
            frequency="weekly",
            birthday=date(1990, 4, 20),
            pets="dog",
            updated_at=SAVED_AT,
        )
    )

    page = client.request("GET", _link(settings, "C1", locale="ru"))

    assert page.status_code == 200
    assert '<html lang="ru">' in page.text and "<h1>Настройки рассылки</h1>" in page.text
    assert '<input type="checkbox" name="channel_email" value="on" checked>' in page.text
    assert '<input type="checkbox" name="channel_sms" value="on">' in page.text
    assert '<input type="radio" name="frequency" value="weekly" checked>' in page.text
    assert '<input type="radio" name="pets" value="dog" checked>' in page.text
    assert 'value="1990-04-20"' in page.text
    # order and service updates: shown on, and not a field the form sends
    assert '<input type="checkbox" checked disabled>Заказы и обслуживание' in page.text
    assert "<script" not in page.text and "@" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "form-action 'self'" in page.headers["content-security-policy"]


def test_posting_the_form_saves_the_customers_choices_and_says_saved(settings: Settings, client: Client) -> None:
    saved = _save(
        client,
        settings,
        "C1",
        {"topic_birthday_holidays": "off", "channel_sms": "off", "frequency": "paused", "birthday": "20.04.1990"}
        | {"pets": "cat", "gender": "f"},
    )

    assert saved.status_code == 200 and "<h1>Saved</h1>" in saved.text
    assert open_state(settings).preferences.get("C1") == Preferences(
        "C1",
        topics_off=frozenset({"birthday_holidays"}),
        channels_off=frozenset({"sms"}),
        frequency="paused",
        paused_until=SAVED_AT.date() + timedelta(days=30),
        birthday=date(1990, 4, 20),
        pets="cat",
        gender="f",
        updated_at=SAVED_AT,
    )


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ({"birthday": "31.02.1990"}, "The birthday is not a date we can read"),
        ({"birthday": "2099-01-01"}, "The birthday is not a date we can read"),
        ({"frequency": "daily"}, "Some of the choices could not be read"),
        ({"topic_service": "on"}, "Some of the choices could not be read"),
    ],
)
def test_a_bad_field_answers_400_with_the_form_and_a_message_and_saves_nothing(
    settings: Settings, client: Client, choices: dict[str, str], message: str
) -> None:
    refused = _save(client, settings, "C1", choices)

    assert refused.status_code == 400
    assert message in refused.text and "<form" in refused.text
    assert open_state(settings).preferences.get("C1") is None


@pytest.mark.parametrize("change", [{"c": "C2"}, {"ch": "sms"}, {"t": "x" * 24}, {"t": ""}])
def test_a_tampered_link_answers_400_shows_nobodys_choices_and_saves_nothing(
    settings: Settings, client: Client, change: dict[str, str]
) -> None:
    open_state(settings).preferences.record(Preferences("C1", birthday=date(1990, 4, 20), updated_at=SAVED_AT))
    fields = dict(parse_qsl(urlsplit(_link(settings, "C1")).query)) | change
    query = "&".join(f"{k}={v}" for k, v in fields.items())

    shown = client.request("GET", f"/preferences?{query}")
    posted = client.request("POST", "/preferences", fields | {"frequency": "weekly", "channel_email": "on"})

    for response in (shown, posted):
        assert response.status_code == 400
        assert "not valid" in response.text and "<form" not in response.text
        assert "1990" not in response.text and "C1" not in response.text and "C2" not in response.text
    assert open_state(settings).preferences.get("C1") == Preferences(
        "C1", birthday=date(1990, 4, 20), updated_at=SAVED_AT
    )
    assert open_state(settings).preferences.get("C2") is None


# --- the next day's plan ----------------------------------------------------------------------------------------


def _person(customer_id: str, **fields: str) -> dict[str, str]:
    base = {
        "customer_id": customer_id,
        "email": f"{customer_id.lower()}@example.com",
        "phone": "+48512345678",
        "first_name": "Test",
        "last_name": "Test",
        "gender": "f",
        "locale": "pl",
        "timezone": "Europe/Warsaw",
        "country": "PL",
        "created_at": "2024-01-01T10:00:00Z",
        "email_opt_in": "true",
        "email_opt_in_at": "2024-01-01T10:00:00Z",
        "sms_opt_in": "true",
        "sms_opt_in_at": "2024-01-01T10:00:00Z",
    }
    return base | fields


def _catalog(folder: Path) -> None:
    """The birthday series and the Friday newsletter without holdouts (nobody set aside by chance), and a
    service message on Fridays by email and SMS."""
    folder.mkdir(parents=True)
    for name in ("birthday", "weekly_sale"):
        campaign = yaml.safe_load((REPO_ROOT / "campaigns" / f"{name}.yaml").read_text(encoding="utf-8"))
        campaign["holdout_share"] = 0
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(campaign), encoding="utf-8")
    service = {
        "name": "service_notice",
        "kind": "transactional",
        "channels": ["email", "sms"],
        "template": "order_status",
        "priority": 100,
        "trigger": {"type": "schedule", "weekday": "friday"},
    }
    (folder / "service_notice.yaml").write_text(yaml.safe_dump(service), encoding="utf-8")


def _plan(paths: RunPaths, customer: str) -> list[tuple[str, str, str, str]]:
    plan = pd.read_parquet(paths.plan)
    rows = plan.loc[plan["customer_id"] == customer, ["campaign", "channel", "decision", "reason"]]
    return sorted(map(tuple, rows.drop_duplicates().values.tolist()))


def test_the_next_days_plan_honours_the_page_and_order_and_service_messages_still_go(
    settings: Settings, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: S1 (birthday today) turns SMS off, P1 pauses, B1 (birthday today) turns birthday greetings off,
    # F1 (no birthday in the shop's data) gives today as their birthday on the page
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", SECRET)
    _catalog(settings.campaigns_dir)
    people = [
        _person("S1", birth_date="1990-06-07"),
        _person("P1"),
        _person("B1", birth_date="1985-06-07"),
        _person("F1", birth_date=""),
    ]
    shop = write_shop(add_rows(tiny_shop(), Table.CUSTOMERS, people), tmp_path / "shop")
    for customer, choices in (
        ("S1", {"channel_sms": "off"}),
        ("P1", {"frequency": "paused"}),
        ("B1", {"topic_birthday_holidays": "off"}),
        ("F1", {"birthday": "1992-06-07"}),
    ):
        assert _save(client, settings, customer, choices).status_code == 200

    # when: the next day's run loads, merges the preferences, profiles and plans
    paths = RunPaths.for_day(settings.output_dir, FRIDAY)
    load_snapshot.fn(str(shop), FRIDAY, paths, settings)
    assert merge_preferences.fn(paths, FRIDAY, settings) == 4
    profile_customers.fn(paths, FRIDAY, settings)
    plan_day.fn(paths, FRIDAY, settings, datetime(2024, 6, 7, 3, 0, tzinfo=UTC))

    # then
    send, service = ("send", ""), [("service_notice", "email", "send", ""), ("service_notice", "sms", "send", "")]
    assert _plan(paths, "S1") == sorted(
        [
            ("birthday", "email", *send),
            ("birthday", "sms", "skipped", "preference_channel"),
            *service,
            # the birthday greeting takes the day's one marketing slot; the newsletter waits (its window closes)
            ("weekly_sale", "email", "skipped", "frequency_cap"),
        ]
    )
    assert _plan(paths, "P1") == sorted([("weekly_sale", "email", "skipped", "preference_pause"), *service])
    assert _plan(paths, "B1") == sorted(
        [
            ("birthday", "email", "skipped", "preference_topic"),
            ("birthday", "sms", "skipped", "preference_topic"),
            ("weekly_sale", "email", *send),
            *service,
        ]
    )
    assert ("birthday", "email", *send) in _plan(paths, "F1")
    profile = pd.read_parquet(paths.profile).set_index("customer_id")
    assert bool(profile.at["F1", "has_birthday"]) and profile.at["F1", "days_until_birthday"] == 0


def test_at_most_weekly_leaves_one_marketing_message_in_any_seven_days(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    # given: three newsletters a week; W1 asks for at most weekly on the page, U1 leaves it as usual
    assert _save(client, settings, "W1", {"frequency": "weekly"}).status_code == 200
    shop = tiny_shop()
    shop = {t: f.iloc[0:0] if t is not Table.PRODUCTS else f for t, f in shop.items()}
    shop = add_rows(shop, Table.CUSTOMERS, [_person("W1"), _person("U1")])
    raw = load_raw(str(write_shop(shop, tmp_path / "shop")))
    campaigns = {
        name: Campaign(
            name=name,
            kind="marketing",
            channels=("email",),
            template="weekly_sale",
            priority=20,
            trigger=ScheduleTrigger(type="schedule", weekday=day),
        )
        for name, day in (("monday_news", "monday"), ("wednesday_news", "wednesday"), ("friday_news", "friday"))
    }

    # when: two weeks are planned with the preferences the next runs read
    rows = simulate(
        raw,
        campaigns,
        date(2024, 6, 3),
        date(2024, 6, 16),
        settings,
        b"k",
        preferences=preferences_frame(open_state(settings).preferences.all()),
    )

    # then: W1 gets one a week, never two within 7 days; U1 gets all six
    sent = rows.loc[rows["decision"] == "send"]
    days = sorted(date.fromisoformat(d) for d in sent.loc[sent["customer_id"] == "W1", "date"])
    assert len(days) == 2 and (days[1] - days[0]).days >= 7
    assert (sent["customer_id"] == "U1").sum() == 6
    assert set(rows.loc[rows["customer_id"] == "W1", "reason"]) <= {"", "frequency_cap"}
