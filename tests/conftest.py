"""Shared plumbing for the test suite: data locations, fake AWS, a local moto server, Prefect."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.demo.local_aws import FAKE_CREDENTIALS, _free_port

# Prefect servers started by tests (and their subprocesses) send no telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-central-1"
SENDER = "Loyalty Test Shop <hello@shop.example.com>"


@pytest.fixture(scope="session")
def online_retail() -> Path:
    """The UCI Online Retail samples that ship inside the repository (``data/online_retail/``)."""
    return REPO_ROOT / "data" / "online_retail"


@pytest.fixture(autouse=True)
def fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test gets fake AWS credentials and its own state and output folders."""
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "LOYALTY_AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LOYALTY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LOYALTY_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("LOYALTY_AWS_REGION", REGION)
    monkeypatch.setenv("LOYALTY_SENDER", SENDER)


def _atomic_moto_dynamodb_writes() -> None:
    """Make moto's DynamoDB writes atomic, as DynamoDB's are.

    moto 5.2 checks a ConditionExpression and then writes, with nothing held in between, so two
    server threads racing on one item can both pass the check (two winners of one ledger claim, a
    flaky race test). DynamoDB serialises writes to an item; one lock around moto's writes gives
    the tests that semantics. Idempotent: patched once per process.
    """
    import functools
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_loyalty_atomic", False):
        return
    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
        original = getattr(DynamoDBBackend, name)

        @functools.wraps(original)
        def serialised(self: object, *args: object, _original: object = original, **kwargs: object) -> object:
            with lock:
                return _original(self, *args, **kwargs)  # type: ignore[operator]

        setattr(DynamoDBBackend, name, serialised)
    DynamoDBBackend._loyalty_atomic = True  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server on 127.0.0.1 for the session (DynamoDB writes atomic); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    _atomic_moto_dynamodb_writes()

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean local AWS for one test, with the sender verified; yields the endpoint URL."""
    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress="hello@shop.example.com")
    yield moto_server


@pytest.fixture
def win_back_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A catalog of the win-back alone, for tests of delivery semantics that count its messages exactly.

    The real catalog's other campaigns (welcome, thank you, birthdays...) would also fire on their shops.
    """
    import shutil

    folder = tmp_path / "campaigns-win-back-only"
    folder.mkdir()
    for name in ("win_back.yaml", "segments.yaml"):
        shutil.copy(REPO_ROOT / "campaigns" / name, folder / name)
    monkeypatch.setenv("LOYALTY_CAMPAIGNS_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (it takes ~25 s to start here)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def sms_in_moto(endpoint: str) -> list[dict[str, str]]:
    """The SMS moto's SNS backend recorded: message_id, phone_number, message (attributes are not kept)."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10) as response:
        return list(json.load(response)["sns"]["SMS"])
