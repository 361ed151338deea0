"""The preferences page as a customer sees it, in headless Chromium with JavaScript off, at 360 px (a phone) and
1280 px: the email footer's "Mailing settings" link, the form filled from what they saved before, a submit that
saves and says so, and a tampered link that shows nobody's settings.

No server: Chromium's requests to the shop's address are answered by the unsubscribe app in-process
(Playwright's routing, the app called through httpx's ASGI transport). Screenshots: ``preferences-page-*.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Page
from pydantic import SecretStr

from tasks.consent.tokens import Purpose, preferences_url, purpose_key
from tasks.consent.unsubscribe import make_app
from tasks.kernel.settings import Settings
from tasks.state.preferences import Preferences, PreferenceStore
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS, artifacts_dir, route_to_app
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SHOP = "https://shop.example.com"
WIDTHS = (360, 1280)
SAVED_AT = datetime(2024, 6, 1, 15, tzinfo=UTC)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    """A page of headless Chromium with JavaScript turned off: the form must work without it."""
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM}): run `bash .ci/install-browser` (as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            java_script_enabled=False,
            locale="pl-PL",
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _shot(page: Page, name: str) -> Path:
    path = artifacts_dir() / f"preferences-page-{name}.png"
    page.screenshot(path=path, full_page=True, animations="disabled")
    return path


def _serve(page: Page, settings: Settings) -> PreferenceStore:
    """Answer Chromium's requests to the shop's address with the app; return the app's preference store."""
    from tasks.state.backend import open_state

    store = open_state(settings).preferences
    app = make_app(settings, preferences=store, clock=lambda: SAVED_AT)
    route_to_app(page, app, SHOP)
    return store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", signing_secret=SecretStr("browser-preferences-secret-0123456789"))


def _link(settings: Settings, customer: str, locale: str) -> str:
    return preferences_url(purpose_key(settings, Purpose.PREFERENCES), f"{SHOP}/preferences", customer, "email", locale)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_customer_changes_their_settings_without_javascript_and_sees_them_saved(
    page: Page, settings: Settings, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    store = _serve(page, settings)
    store.record(Preferences("C1", channels_off=frozenset({"sms"}), pets="dog", updated_at=SAVED_AT))

    # the email's footer carries the link, in the email's language
    page.set_content((REPO_ROOT / "tests/golden/welcome/pl/step3/body.html").read_text(encoding="utf-8"))
    footer = page.get_by_role("link", name="Ustawienia wiadomości")
    assert "/preferences?" in (footer.get_attribute("href") or "")
    _shot(page, f"{width}-email")

    page.goto(_link(settings, "C1", "pl"))
    assert page.get_by_role("heading").inner_text() == "Ustawienia wiadomości"
    assert page.get_by_label("E-mail").is_checked() and not page.get_by_label("SMS").is_checked()
    assert page.get_by_label("Pies").is_checked()
    service = page.get_by_label("Zamówienia i obsługa")
    assert service.is_checked() and service.is_disabled()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    _shot(page, f"{width}-form")

    page.get_by_label("Nowości i wyprzedaże").uncheck()
    page.get_by_label("Najwyżej raz w tygodniu").check()
    page.get_by_label("Data urodzenia").fill("1990-04-20")
    page.get_by_label("Kobieta").check()
    page.get_by_role("button", name="Zapisz").click()
    page.get_by_role("heading", name="Zapisano").wait_for()
    _shot(page, f"{width}-saved")

    saved = store.get("C1")
    assert saved is not None
    assert (saved.topics_off, saved.channels_off, saved.frequency) == ({"news_and_sales"}, {"sms"}, "weekly")
    assert (saved.birthday, saved.pets, saved.gender) == (date(1990, 4, 20), "dog", "f")

    # back on the page: it shows what was just saved
    page.get_by_role("link", name="Zmień ustawienia").click()
    assert page.get_by_label("Najwyżej raz w tygodniu").is_checked()
    assert not page.get_by_label("Nowości i wyprzedaże").is_checked()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_tampered_link_shows_an_error_and_nobodys_settings(page: Page, settings: Settings, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    store = _serve(page, settings)
    store.record(Preferences("C1", birthday=date(1990, 4, 20), pets="cat", updated_at=SAVED_AT))
    link = _link(settings, "C1", "ru")
    token = dict(parse_qsl(urlsplit(link).query))["t"]
    altered = link.replace(f"t={token}", f"t={token[:-4]}AAAA" if not token.endswith("AAAA") else f"t={token[:-4]}BBBB")

    for tampered, name in ((link.replace("c=C1", "c=C2"), "other-customer"), (altered, "token")):
        response = page.goto(tampered)

        assert response is not None and response.status == 400
        text = page.locator("body").inner_text()
        assert "Ссылка не работает" in text
        assert "C1" not in text and "C2" not in text and "1990" not in text
        assert page.locator("form").count() == 0 and page.locator("input").count() == 0
        _shot(page, f"{width}-tampered-{name}")
