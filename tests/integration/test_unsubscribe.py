"""The one-click unsubscribe endpoint: a signed POST suppresses, a GET never does, a forgery changes nothing."""

from __future__ import annotations

import asyncio
import html
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.consent.tokens import Purpose, purpose_key, unsubscribe_url
from tasks.consent.unsubscribe import make_app
from tasks.demo.local_aws import _free_port
from tasks.kernel.enums import Channel
from tasks.kernel.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "unsubscribe-test-secret-0123456789"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", signing_secret=SecretStr(SECRET))


class Client:
    """Calls an ASGI app in-process through httpx (Starlette's TestClient warns without ``httpx2``)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="https://shop.example.com") as http:
                return await http.request(method, path, data=data)

        return asyncio.run(call())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.request("POST", path, data)


@pytest.fixture
def client(settings: Settings) -> Client:
    return Client(make_app(settings))


def _path(settings: Settings, customer_id: str = "C42", channel: str = "email", topic: str | None = None) -> str:
    """The path and query of a real unsubscribe link, as a mail provider would request it."""
    url = unsubscribe_url(
        purpose_key(settings, Purpose.UNSUBSCRIBE), settings.unsubscribe_base_url, customer_id, channel, topic
    )
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_one_click_post_suppresses_and_answers_200_every_time(client: Client, settings: Settings) -> None:
    path = _path(settings)

    first = client.post(path, data=ONE_CLICK)
    second = client.post(path, data=ONE_CLICK)

    assert first.status_code == 200
    assert second.status_code == 200
    suppressions = SuppressionList.for_settings(settings)
    assert suppressions.customers(Channel.EMAIL) == {"C42"}
    assert suppressions.customer_reason(Channel.EMAIL, "C42") is SuppressionReason.UNSUBSCRIBE
    assert suppressions.customers(Channel.SMS) == frozenset()


def test_a_topic_link_unsubscribes_from_that_topic_only(client: Client, settings: Settings) -> None:
    response = client.post(_path(settings, channel="sms", topic="win_back"), data=ONE_CLICK)

    assert response.status_code == 200
    suppressions = SuppressionList.for_settings(settings)
    assert suppressions.customers(Channel.SMS) == frozenset()
    assert suppressions.customers(Channel.SMS, topic="win_back") == {"C42"}


def test_get_shows_a_page_of_buttons_and_suppresses_nothing(client: Client, settings: Settings) -> None:
    response = client.get(_path(settings))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.count('<form method="post" action="?c=C42&amp;ch=email&amp;') == 2  # offers; everything
    assert response.text.count('name="List-Unsubscribe" value="One-Click"') == 2
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert SuppressionList.for_settings(settings).customers(Channel.EMAIL) == frozenset()


def test_the_confirmation_button_unsubscribes(client: Client, settings: Settings) -> None:
    path = _path(settings)

    # a link without a topic: its page's "stop every email" button posts that same link, token included
    assert f'action="?{html.escape(urlsplit(path).query)}"' in client.get(path).text
    response = client.post(path, data=ONE_CLICK)

    assert response.status_code == 200
    assert "no more email messages" in response.text
    assert SuppressionList.for_settings(settings).customers(Channel.EMAIL) == {"C42"}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_forged_link_is_refused_and_suppresses_nothing(client: Client, settings: Settings, method: str) -> None:
    path = _path(settings, customer_id="C42").replace("c=C42", "c=C43")

    response = client.request(method, path, data=ONE_CLICK if method == "POST" else None)

    assert response.status_code == 400
    assert "not valid" in response.text
    assert "C43" not in response.text
    assert SuppressionList.for_settings(settings).customers(Channel.EMAIL) == frozenset()


def test_a_link_without_a_token_is_refused(client: Client) -> None:
    assert client.post("/unsubscribe", data=ONE_CLICK).status_code == 400


def test_a_token_in_the_form_body_is_accepted(client: Client, settings: Settings) -> None:
    query = urlsplit(_path(settings)).query
    fields = dict(pair.split("=", 1) for pair in query.split("&"))

    response = client.post("/unsubscribe", data={**ONE_CLICK, **fields})

    assert response.status_code == 200
    assert SuppressionList.for_settings(settings).customers(Channel.EMAIL) == {"C42"}


def test_an_oversized_body_is_refused(client: Client, settings: Settings) -> None:
    response = client.post(_path(settings), data={"List-Unsubscribe": "One-Click", "pad": "x" * 10_000})

    assert response.status_code == 413
    assert SuppressionList.for_settings(settings).customers(Channel.EMAIL) == frozenset()


def test_health_check_answers_ok(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.text == "ok"


def test_the_app_records_into_an_injected_store(settings: Settings) -> None:
    calls: list[tuple[object, ...]] = []

    class Store:
        def add_customer(self, channel, customer_id, reason, topic=None) -> bool:  # type: ignore[no-untyped-def]
            calls.append((channel, customer_id, reason, topic))
            return True

    response = Client(make_app(settings, suppressions=Store())).post(_path(settings), data=ONE_CLICK)

    assert response.status_code == 200

    assert calls == [(Channel.EMAIL, "C42", SuppressionReason.UNSUBSCRIBE, None)]


def test_serve_unsubscribe_answers_a_real_one_click_post(settings: Settings, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "LOYALTY_STATE_DIR": str(settings.state_dir), "LOYALTY_UNSUBSCRIBE_SECRET": SECRET}
    code = f"from tasks.kernel.settings import Settings; from tasks.consent.unsubscribe import serve_unsubscribe; serve_unsubscribe(Settings(), port={port})"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, stdout=out, stderr=out)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, server, log)
        path = _path(settings)

        with httpx.Client(base_url=base, timeout=10) as http:
            first = http.post(path, data=ONE_CLICK)
            second = http.post(path, data=ONE_CLICK)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert (first.status_code, second.status_code) == (200, 200)
    assert SuppressionList.for_settings(settings).customers(Channel.EMAIL) == {"C42"}
    output = log.read_text()
    assert "unsubscribed customer C42 from email" in output
    token = dict(p.split("=", 1) for p in urlsplit(path).query.split("&"))["t"]
    assert token not in output  # no access log: URLs carry tokens


def _wait_healthy(base: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"serve_unsubscribe exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"serve_unsubscribe did not become healthy in {timeout} s:\n{log.read_text()}")
