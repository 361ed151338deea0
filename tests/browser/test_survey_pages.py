"""The survey as a customer sees it, in headless Chromium at 360 px (a phone) and 1280 px: the email's eleven
scores in one row, the answer page, the thanks, and a tampered link that shows nobody's data.

No server: Chromium's requests to the shop's address are answered by the unsubscribe app in-process
(Playwright's routing, the app called through httpx's ASGI transport). Screenshots: ``survey-pages-*.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page
from pydantic import SecretStr

from tasks.consent.tokens import Purpose, purpose_key, survey_url
from tasks.consent.unsubscribe import make_app
from tasks.kernel.settings import Settings
from tasks.state.surveys import SurveyStore
from tests.browser.conftest import route_to_app
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SHOP = "https://shop.example.com"
WIDTHS = (360, 1280)


def _serve(page: Page, settings: Settings) -> SurveyStore:
    """Answer Chromium's requests to the shop's address with the app; return the app's answer store."""
    from tasks.state.backend import open_state

    store = open_state(settings).surveys
    app = make_app(settings, surveys=store, clock=lambda: datetime(2024, 6, 1, 15, tzinfo=UTC))
    route_to_app(page, app, SHOP)
    return store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", signing_secret=SecretStr("browser-survey-secret-0123456789"))


@pytest.mark.parametrize("width", WIDTHS)
def test_a_customer_picks_a_score_confirms_it_with_a_comment_and_is_thanked(
    page: Page, screenshot: Callable[[str], Path], settings: Settings, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    store = _serve(page, settings)

    # the email: eleven scores in one row, none wrapped or cut at this width
    page.set_content((REPO_ROOT / "tests/golden/survey/ru/step1/body.html").read_text(encoding="utf-8"))
    scores = page.locator("a[href*='/survey?']")
    assert scores.count() == 11
    tops = {round(scores.nth(i).bounding_box()["y"]) for i in range(11)}  # type: ignore[index]
    assert len(tops) == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(f"{width}-email")

    link = survey_url(purpose_key(settings, Purpose.SURVEY), f"{SHOP}/survey", "C1", "O-1001", 3, "ru")
    page.goto(link)
    assert page.get_by_role("heading").inner_text() == "Как вам заказ?"
    assert store.answers(datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(f"{width}-confirm")

    page.get_by_label("Хотите что-нибудь добавить?").fill("Курьер опоздал на два дня")
    page.get_by_role("button", name="Отправить ответ").click()
    page.get_by_role("heading", name="Спасибо!").wait_for()
    screenshot(f"{width}-thanks")

    [answer] = store.answers(datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    assert (answer.customer_id, answer.order_id, answer.score, answer.comment) == (
        "C1",
        "O-1001",
        3,
        "Курьер опоздал на два дня",
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_a_tampered_link_shows_an_error_and_nobodys_data(
    page: Page, screenshot: Callable[[str], Path], settings: Settings, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    _serve(page, settings)
    link = survey_url(purpose_key(settings, Purpose.SURVEY), f"{SHOP}/survey", "C1", "O-1001", 3)

    response = page.goto(link.replace("c=C1", "c=C2"))

    assert response is not None and response.status == 400
    text = page.locator("body").inner_text()
    assert "not valid" in text and "C1" not in text and "C2" not in text and "O-1001" not in text
    assert page.locator("form").count() == 0
    screenshot(f"{width}-tampered")
