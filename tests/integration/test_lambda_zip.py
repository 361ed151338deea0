"""The unsubscribe Lambda's zip (infra/build-lambda.sh), unzipped and run as the python3.11 runtime would.

The handler is imported from the unzipped folder alone (a bare interpreter: no site-packages, no repository)
with the Lambda's environment from infra/loyalty.yaml, and answers function-URL requests: a missing package
in the zip would be an import error, a missing setting a 500.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BUILD = REPO_ROOT / "infra" / "build-lambda.sh"
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"

# in the unzipped folder's interpreter: sign a link as the worker would, then ask the handler for its page
ANSWER = """
import json, sys
from urllib.parse import parse_qsl, urlsplit

from tasks.consent import lambda_handler
from tasks.consent.tokens import Purpose, purpose_key, unsubscribe_url
from tasks.kernel.settings import Settings

host = "unsubscribe.lambda-url.eu-central-1.on.aws"
link = unsubscribe_url(purpose_key(Settings(), Purpose.UNSUBSCRIBE), f"https://{host}/unsubscribe", "C42", "email")
statuses = []
for query in (urlsplit(link).query, urlsplit(link).query.replace("C42", "C43")):
    http = {"method": "GET", "path": "/unsubscribe", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "x"}
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": "/unsubscribe", "rawQueryString": query,
        "queryStringParameters": dict(parse_qsl(query)), "headers": {"host": host},
        "requestContext": {"accountId": "anonymous", "apiId": "unsubscribe", "domainName": host, "http": http,
                           "requestId": "r1", "routeKey": "$default", "stage": "$default",
                           "time": "01/Jun/2024:03:00:00 +0000", "timeEpoch": 1717210800000},
        "isBase64Encoded": False,
    }
    statuses.append(lambda_handler.handler(event, None)["statusCode"])
heavy = sorted(name for name in ("pandas", "prefect", "numpy") if name in sys.modules)
print(json.dumps({"statuses": statuses, "heavy": heavy}))
"""


def _uv() -> str:
    found = shutil.which("uv") or str(REPO_ROOT / ".tools" / "bin" / "uv")
    assert Path(found).exists(), "uv is missing: `make sync` installs it"
    return found


@pytest.fixture(scope="module")
def unzipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip built by infra/build-lambda.sh, unzipped as Lambda does into its task folder."""
    root = tmp_path_factory.mktemp("lambda")
    env = {**os.environ, "UV": _uv(), "PYTHON": str(BASE_PYTHON)}
    built = subprocess.run(
        ["sh", str(BUILD), str(root / "loyalty-unsubscribe.zip")], env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stderr
    with zipfile.ZipFile(root / "loyalty-unsubscribe.zip") as archive:
        archive.extractall(root / "task")
    return root / "task"


def test_the_unzipped_handler_shows_a_signed_links_page_and_refuses_a_forged_one(
    unzipped: Path, tmp_path: Path
) -> None:
    env = {
        # the function's environment in infra/loyalty.yaml (the secret given directly instead of its ARN)
        "LOYALTY_STATE_BACKEND": "dynamodb",
        "LOYALTY_STATE_TABLE": "loyalty-state",
        "LOYALTY_LEDGER_TABLE": "loyalty-send-ledger",
        "LOYALTY_SIGNING_SECRET": "lambda-test-secret-0123456789abcdef",
        "LOYALTY_SHOP_NAME": "Kot & Pies",
        "LOYALTY_AWS_REGION": "eu-central-1",
        "LOYALTY_STATE_DIR": str(tmp_path / "state"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PYTHONPATH": str(unzipped),  # Lambda's /var/task
        "HOME": str(tmp_path),
    }

    # -S: no site-packages, so only the zip's packages (and the standard library) can be imported
    answered = subprocess.run(
        [str(BASE_PYTHON), "-S", "-c", ANSWER], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )

    assert answered.returncode == 0, answered.stderr
    result = json.loads(answered.stdout)
    assert result["statuses"][0] == 200  # the page asking which messages to stop
    assert 400 <= result["statuses"][1] < 500  # a link whose customer was changed: refused, not a crash
    assert result["heavy"] == []


def test_the_zip_holds_the_handlers_packages_and_not_the_flows_dependencies(unzipped: Path) -> None:
    names = {p.name for p in unzipped.iterdir()}

    assert {"tasks", "mangum", "starlette", "pydantic", "pydantic_settings", "boto3"} <= names
    assert names.isdisjoint({"pandas", "prefect", "numpy", "scipy", "pyarrow", "moto"})
