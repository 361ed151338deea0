"""The unsubscribe app in-process: what the pages say, which fields count, and what is refused."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from tasks.consent.suppression import SuppressionList
from tasks.consent.tokens import Purpose, purpose_key, sign, unsubscribe_url
from tasks.consent.unsubscribe import make_app
from tasks.kernel.enums import Channel
from tasks.kernel.settings import Settings

SECRET = "unit-unsubscribe-secret-0123456789"
ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None, state_dir=tmp_path / "state", signing_secret=SecretStr(SECRET), shop_name="Kot & Pies"
    )


@pytest.fixture
def app(settings: Settings) -> Starlette:
    return make_app(settings)


def _call(
    app: Starlette, method: str, path: str, content: bytes | str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://shop.example.com") as http:
            return await http.request(method, path, content=content, headers=headers)

    return asyncio.run(call())


def _link(settings: Settings, customer_id: str = "C42", channel: str = "email", topic: str | None = None) -> str:
    url = unsubscribe_url(
        purpose_key(settings, Purpose.UNSUBSCRIBE), settings.unsubscribe_base_url, customer_id, channel, topic
    )
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _suppressed(settings: Settings, channel: Channel, topic: str | None = None) -> frozenset[str]:
    return SuppressionList.for_settings(settings).customers(channel, topic=topic)


def test_the_confirmation_page_names_the_channel_the_topic_and_the_escaped_shop(
    app: Starlette, settings: Settings
) -> None:
    response = _call(app, "GET", _link(settings, channel="sms", topic="win_back"))

    assert response.status_code == 200
    assert "Stop text message (SMS) messages about win_back from Kot &amp; Pies?" in response.text
    assert _suppressed(settings, Channel.SMS, topic="win_back") == frozenset()


def test_the_signed_query_wins_over_fields_in_the_body(app: Starlette, settings: Settings) -> None:
    response = _call(app, "POST", _link(settings, customer_id="C42"), f"{ONE_CLICK}&c=C43", FORM)

    assert response.status_code == 200
    assert _suppressed(settings, Channel.EMAIL) == {"C42"}


def test_dropping_the_topic_from_a_topic_link_does_not_widen_it_to_the_whole_channel(
    app: Starlette, settings: Settings
) -> None:
    path = _link(settings, topic="win_back").replace("&tp=win_back", "")

    response = _call(app, "POST", path, ONE_CLICK, FORM)

    assert response.status_code == 400
    assert _suppressed(settings, Channel.EMAIL) == frozenset()
    assert _suppressed(settings, Channel.EMAIL, topic="win_back") == frozenset()


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"List-Unsubscribe": "One-Click"}', {"content-type": "application/json"}),
        (b"\xff\xfe not utf-8", FORM),
        (None, None),
    ],
    ids=["json", "not-utf8-form", "no-body"],
)
def test_a_signed_link_unsubscribes_whatever_the_body(
    app: Starlette, settings: Settings, content: bytes | None, headers: dict[str, str] | None
) -> None:
    response = _call(app, "POST", _link(settings), content, headers)

    assert response.status_code == 200
    assert "You will get no more email messages from Kot &amp; Pies." in response.text
    assert _suppressed(settings, Channel.EMAIL) == {"C42"}


def test_every_answer_keeps_the_tokened_url_out_of_caches_frames_and_indexes(
    app: Starlette, settings: Settings
) -> None:
    accepted = _call(app, "POST", _link(settings), ONE_CLICK, FORM)
    refused = _call(app, "POST", _link(settings).replace("c=C42", "c=C43"), ONE_CLICK, FORM)

    for response in (accepted, refused):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-robots-tag"] == "noindex, nofollow"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert (accepted.status_code, refused.status_code) == (200, 400)


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_other_methods_are_not_allowed_and_suppress_nothing(app: Starlette, settings: Settings, method: str) -> None:
    response = _call(app, method, _link(settings), ONE_CLICK, FORM)

    assert response.status_code == 405
    assert _suppressed(settings, Channel.EMAIL) == frozenset()


def test_a_refused_link_is_logged_as_a_warning_without_its_token(
    app: Starlette, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    forged = _link(settings).replace("c=C42", "c=C43")
    token = forged.rsplit("t=", 1)[1]

    with caplog.at_level(logging.INFO, logger="loyalty.unsubscribe"):
        _call(app, "POST", forged, ONE_CLICK, FORM)

    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "signature does not match" in caplog.text
    assert token not in caplog.text


def _buttons(page: httpx.Response) -> dict[str, str]:
    """The page's buttons: label -> the path and query each one POSTs to."""
    forms = re.findall(r'<form method="post" action="([^"]+)">.*?<button type="submit">([^<]+)</button>', page.text)
    return {html.unescape(label): "/unsubscribe" + html.unescape(action) for action, label in forms}


def test_a_marketing_link_posted_one_click_stops_offers_and_order_emails_go_on(
    app: Starlette, settings: Settings
) -> None:
    # every footer link (offers and order emails alike) and every List-Unsubscribe header carries this link
    one_click = _call(app, "POST", _link(settings, topic="marketing"), ONE_CLICK, FORM)

    assert one_click.status_code == 200
    assert "You will get no more offers and newsletters by email from Kot &amp; Pies." in one_click.text
    assert "Order and delivery updates will still reach you by email." in one_click.text
    assert _suppressed(settings, Channel.EMAIL, topic="marketing") == {"C42"}
    assert _suppressed(settings, Channel.EMAIL) == frozenset()  # order emails go on


def test_the_page_of_a_link_offers_to_stop_offers_and_separately_everything(app: Starlette, settings: Settings) -> None:
    page = _call(app, "GET", _link(settings, topic="marketing"))

    assert page.status_code == 200 and "<h1>Email preferences</h1>" in page.text
    assert "Stop offers and newsletters by email from Kot &amp; Pies?" in page.text
    assert "Order and delivery updates will still reach you by email." in page.text
    assert "you will not hear from us by email about your orders either" in page.text
    buttons = _buttons(page)
    assert list(buttons) == ["Unsubscribe from offers", "Stop every email, order updates too"]
    assert _suppressed(settings, Channel.EMAIL, topic="marketing") == frozenset()  # a GET changes nothing

    _call(app, "POST", buttons["Unsubscribe from offers"], ONE_CLICK, FORM)
    assert (_suppressed(settings, Channel.EMAIL, "marketing"), _suppressed(settings, Channel.EMAIL)) == ({"C42"}, set())

    everything = _call(app, "POST", buttons["Stop every email, order updates too"], ONE_CLICK, FORM)
    assert everything.status_code == 200 and "You will get no more email messages" in everything.text
    assert _suppressed(settings, Channel.EMAIL) == {"C42"}
    assert _suppressed(settings, Channel.SMS) == frozenset()  # the link's own channel only


def test_an_old_link_without_a_topic_stops_everything_one_click_and_its_page_offers_offers_first(
    app: Starlette, settings: Settings
) -> None:
    # every link sent before topics (order emails' «Настройки рассылок» included) is signed this way, by the raw secret
    key = SECRET.encode()
    old = f"/unsubscribe?c=C7&ch=email&t={sign(key, 'unsubscribe', 'C7', 'email')}"

    page = _call(app, "GET", old)
    one_click = _call(app, "POST", old, ONE_CLICK, FORM)

    assert list(_buttons(page)) == ["Unsubscribe from offers", "Stop every email, order updates too"]
    assert one_click.status_code == 200
    assert _suppressed(settings, Channel.EMAIL) == {"C7"}  # what the link always meant: the whole channel


def test_an_sms_link_page_speaks_of_text_messages(app: Starlette, settings: Settings) -> None:
    page = _call(app, "GET", _link(settings, channel="sms", topic="marketing"))

    assert "<h1>Text message preferences</h1>" in page.text
    assert list(_buttons(page)) == ["Unsubscribe from offers", "Stop every text message, order updates too"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/octet-stream", "application/x-www-form-urlencoded"]
)
def test_a_too_large_post_is_refused_with_413_and_records_nothing(
    app: Starlette, settings: Settings, content_type: str
) -> None:
    response = _call(app, "POST", _link(settings), "x" * 10_000, {"content-type": content_type})

    assert response.status_code == 413
    assert _suppressed(settings, Channel.EMAIL, topic="marketing") == frozenset()
    assert _suppressed(settings, Channel.EMAIL) == frozenset()


def test_a_one_click_post_still_unsubscribes_beside_the_size_limit(app: Starlette, settings: Settings) -> None:
    response = _call(app, "POST", _link(settings, topic="marketing"), ONE_CLICK, FORM)

    assert response.status_code == 200
    assert _suppressed(settings, Channel.EMAIL, topic="marketing") == {"C42"}


def test_the_endpoint_of_another_host_with_the_same_secret_accepts_this_hosts_link(
    settings: Settings, tmp_path: Path
) -> None:
    other_host = settings.model_copy(update={"state_dir": tmp_path / "other-host-state"})

    response = _call(make_app(other_host), "POST", _link(settings, topic="marketing"), ONE_CLICK, FORM)

    assert response.status_code == 200
    assert _suppressed(other_host, Channel.EMAIL, topic="marketing") == {"C42"}


def test_after_a_rotation_the_endpoint_accepts_links_of_the_old_secret_and_refuses_strangers(
    settings: Settings,
) -> None:
    rotated = settings.model_copy(
        update={
            "signing_secret": SecretStr("a-brand-new-secret-0123456789"),
            "signing_secrets_old": [SecretStr(SECRET)],
        }
    )
    stranger = settings.model_copy(update={"signing_secret": SecretStr("not-the-shops-secret-0123456789")})
    app = make_app(rotated)

    old = _call(app, "POST", _link(settings, topic="marketing"), ONE_CLICK, FORM)
    forged = _call(app, "POST", _link(stranger, customer_id="C99", topic="marketing"), ONE_CLICK, FORM)

    assert (old.status_code, forged.status_code) == (200, 400)
    assert _suppressed(rotated, Channel.EMAIL, topic="marketing") == {"C42"}
