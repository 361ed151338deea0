"""The after-delivery survey end to end: the email's signed links, the answer pages (a GET records nothing, a
POST records, a tampered link shows nothing), and the next day's run: a detractor hears from service recovery,
a promoter gets the review request; never asked twice in 90 days."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pandas as pd
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from flows.daily_run import daily_run
from tasks.consent.tokens import Purpose, purpose_key, survey_url
from tasks.consent.unsubscribe import make_app
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.state.backend import open_state
from tasks.state.surveys import SurveyAnswer
from tests.conftest import REPO_ROOT
from tests.shops import add_rows, tiny_shop, write_shop

DAY_1, DAY_2 = date(2024, 6, 1), date(2024, 6, 2)
ANSWERED = datetime(2024, 6, 1, 15, 0, tzinfo=UTC)
WEEK = (datetime(2024, 5, 27, tzinfo=UTC), datetime(2024, 6, 10, tzinfo=UTC))
SECRET = "survey-test-secret-0123456789"


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


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _form(page: str) -> dict[str, str]:
    """The hidden fields of the answer page's form, as a browser would post them."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LOYALTY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", SECRET)
    return Settings(state_dir=tmp_path / "state", signing_secret=SecretStr(SECRET))


@pytest.fixture
def client(settings: Settings) -> Client:
    return Client(make_app(settings, clock=lambda: ANSWERED))


def _link(settings: Settings, customer: str, order: str, score: int, locale: str | None = None) -> str:
    return _path(survey_url(purpose_key(settings, Purpose.SURVEY), "/survey", customer, order, score, locale))


def _answers(settings: Settings) -> list[SurveyAnswer]:
    return open_state(settings).surveys.answers(*WEEK)


# --- the answer pages ---------------------------------------------------------------------------------------


def test_opening_a_link_shows_the_score_to_confirm_and_records_nothing(settings: Settings, client: Client) -> None:
    page = client.request("GET", _link(settings, "C1", "O1", 8, "ru"))

    assert page.status_code == 200
    assert "Вы выбрали <strong>8</strong> из 10" in page.text and 'method="post"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert _answers(settings) == []  # a mail scanner fetching every link votes for nothing


def test_posting_the_page_records_the_answer_and_a_second_post_replaces_it(settings: Settings, client: Client) -> None:
    first = client.request("GET", _link(settings, "C1", "O1", 3, "pl"))
    posted = client.request("POST", "/survey", _form(first.text) | {"comment": "Paczka\x00 przyszła zgnieciona"})
    # the customer changes their mind on the page: another score's link, posted again
    other = re.search(r'href="(\?[^"]*s=9[^"]*)"', first.text)
    assert other is not None
    second = client.request("GET", "/survey" + other.group(1).replace("&amp;", "&"))
    again = client.request("POST", "/survey", _form(second.text))

    assert posted.status_code == again.status_code == 200
    assert "Dziękujemy!" in posted.text
    [answer] = _answers(settings)
    assert (answer.customer_id, answer.order_id, answer.score, answer.comment) == ("C1", "O1", 9, "")


def test_a_comment_is_kept_clean_and_never_logged(
    settings: Settings, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    page = client.request("GET", _link(settings, "C1", "O1", 2))
    client.request("POST", "/survey", _form(page.text) | {"comment": "secret-words\x07 " + "я" * 3000})

    [answer] = _answers(settings)
    assert answer.comment.startswith("secret-words я") and len(answer.comment) == 2000
    assert "secret-words" not in caplog.text


@pytest.mark.parametrize("change", [{"c": "C2"}, {"o": "O2"}, {"s": "10"}, {"t": "x" * 24}])
def test_a_tampered_link_answers_400_shows_no_data_and_records_nothing(
    settings: Settings, client: Client, change: dict[str, str]
) -> None:
    fields = dict(parse_qsl(urlsplit(_link(settings, "C1", "O1", 3)).query)) | change
    query = "&".join(f"{k}={v}" for k, v in fields.items())

    shown = client.request("GET", f"/survey?{query}")
    posted = client.request("POST", "/survey", fields | {"comment": "hello"})

    for response in (shown, posted):
        assert response.status_code == 400
        assert "C1" not in response.text and "C2" not in response.text and "O1" not in response.text
        assert "O2" not in response.text and "<form" not in response.text
    assert _answers(settings) == []


def test_the_unsubscribe_body_limit_stays_4_kib_while_a_long_comment_fits(settings: Settings, client: Client) -> None:
    page = client.request("GET", _link(settings, "C1", "O1", 5, "ru"))

    posted = client.request("POST", "/survey", _form(page.text) | {"comment": "ж" * 2000})
    unsubscribe = client.request("POST", "/unsubscribe", {"List-Unsubscribe": "One-Click", "x": "y" * 5000})

    assert posted.status_code == 200 and _answers(settings)[0].comment == "ж" * 2000
    assert unsubscribe.status_code == 413


# --- end to end: the survey email, the answer, the next day ---------------------------------------------------


@pytest.fixture
def survey_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    for name in ("survey.yaml", "survey_review.yaml", "service_recovery.yaml", "segments.yaml"):
        shutil.copy(REPO_ROOT / "campaigns" / name, folder / name)
    monkeypatch.setenv("LOYALTY_CAMPAIGNS_DIR", str(folder))
    return folder


def _shop() -> dict[Table, pd.DataFrame]:
    """The tiny shop plus D1 (ru), P1 and R1 (en), each with an order delivered on 28 May (four days before 1 June);
    R1 had another delivered on 10 April, so was asked about it in April: not again within 90 days."""
    people = [
        {
            "customer_id": c,
            "email": f"{c.lower()}@example.com",
            "first_name": name,
            "last_name": "Test",
            "gender": "unknown",
            "locale": locale,
            "timezone": "Europe/Warsaw",
            "country": "PL",
            "created_at": "2023-01-01T00:00:00Z",
            "email_opt_in": "true",
            "email_opt_in_at": "2023-01-01T00:00:00Z",
            "sms_opt_in": "false",
        }
        for c, name, locale in (("D1", "Дарья", "ru"), ("P1", "Peter", "en"), ("R1", "Rose", "en"))
    ]
    frames = add_rows(tiny_shop(), Table.CUSTOMERS, people)
    orders = [("D1-1", "D1", "2024-05-24", "2024-05-28"), ("P1-1", "P1", "2024-05-24", "2024-05-28")]
    orders += [("R1-0", "R1", "2024-04-05", "2024-04-10"), ("R1-1", "R1", "2024-05-24", "2024-05-28")]
    frames = add_rows(
        frames,
        Table.ORDERS,
        [
            {"order_id": o, "customer_id": c, "created_at": f"{d}T10:00:00Z", "status": "delivered", "total": "50"}
            | {"currency": "EUR"}
            for o, c, d, _ in orders
        ],
    )
    events = [{"order_id": o, "status": "delivered", "at": f"{at}T12:00:00Z"} for o, _, _, at in orders]
    return add_rows(frames, Table.ORDER_EVENTS, events)


def _plan(day: date, customer: str) -> list[tuple[str, str]]:
    plan = pd.read_parquet(RunPaths.for_day(Settings().output_dir, day).plan)
    rows = plan.loc[plan["customer_id"] == customer, ["campaign", "decision"]].drop_duplicates()
    return sorted(map(tuple, rows.values.tolist()))


@pytest.mark.usefixtures("prefect_harness")
def test_a_detractor_hears_from_service_recovery_and_a_promoter_gets_the_review_request_next_day(
    aws: str, tmp_path: Path, survey_catalog: Path, settings: Settings
) -> None:
    shop = write_shop(_shop(), tmp_path / "shop")

    # day 1: both are asked about the order delivered four days ago; R1, asked in April, is not asked again
    first = daily_run(as_of=DAY_1, data=str(shop), now=datetime(2024, 6, 1, 3, 0, tzinfo=UTC))
    assert _plan(DAY_1, "D1") == [("survey", "send")] and _plan(DAY_1, "P1") == [("survey", "send")]
    assert _plan(DAY_1, "R1") == []
    email = next((Path(first.run_dir) / "outbox" / "survey").glob("*-email.html")).read_text()
    links = re.findall(r'href="(https://shop\.example\.com/survey\?[^"]+)"', email)
    assert [dict(parse_qsl(urlsplit(u.replace("&amp;", "&")).query))["s"] for u in links] == [str(s) for s in range(11)]

    # the answers, through the endpoint: D1 gives 3 with a comment, P1 gives 10
    client = Client(make_app(Settings(), clock=lambda: ANSWERED))
    for customer, order, score in (("D1", "D1-1", 3), ("P1", "P1-1", 10)):
        page = client.request("GET", _link(settings, customer, order, score))
        assert client.request("POST", "/survey", _form(page.text) | {"comment": "Доставка опоздала"}).status_code == 200

    # day 2: the detractor's low score is an incident, so service recovery writes; the promoter is thanked
    second = daily_run(as_of=DAY_2, data=str(shop), now=datetime(2024, 6, 2, 3, 0, tzinfo=UTC))
    assert ("service_recovery", "send") in _plan(DAY_2, "D1")
    assert ("survey_review", "send") not in _plan(DAY_2, "D1")
    assert ("survey_review", "send") in _plan(DAY_2, "P1")
    assert ("service_recovery", "send") not in _plan(DAY_2, "P1")
    apology = next((Path(second.run_dir) / "outbox" / "service_recovery").glob("*-email.txt")).read_text()
    assert "низкая оценка" in apology


# --- the weekly report command ---------------------------------------------------------------------------------


def test_the_report_command_writes_the_weeks_nps_chart_and_quotes(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("LOYALTY_OUTPUT_DIR", str(tmp_path / "output"))
    store = open_state(settings).surveys
    for customer, score, comment in (("C1", 10, ""), ("C2", 9, ""), ("C3", 2, "Упаковка порвана"), ("C4", 7, "")):
        store.record(SurveyAnswer(customer, f"O-{customer}", score, comment, ANSWERED))

    result = CliRunner().invoke(app, ["survey", "report", "--week", "2024-W22"])
    wrong = CliRunner().invoke(app, ["survey", "report", "--week", "22/2024"])

    assert result.exit_code == 0, result.output
    assert "NPS 25 from 4 answers" in result.output  # 2 promoters, 1 detractor of 4
    folder = tmp_path / "output" / "reports" / "survey" / "2024-W22"
    assert (folder / "nps.png").stat().st_size > 1000
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "> Упаковка порвана" in report and "C3" not in report
    assert wrong.exit_code == 2 and "YYYY-Www" in wrong.output
