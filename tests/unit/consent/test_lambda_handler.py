"""The unsubscribe endpoint as the Lambda of infra/loyalty.yaml runs it: a function-URL event through Mangum."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from pydantic import SecretStr

from tasks.consent import lambda_handler
from tasks.consent.suppression import SuppressionList
from tasks.consent.tokens import Purpose, purpose_key, unsubscribe_url
from tasks.kernel.aws import dynamodb_client
from tasks.kernel.enums import Channel
from tasks.kernel.settings import Settings
from tasks.state.dynamodb import create_state_table
from tests.conftest import REGION

SECRET = "the-secret-the-stack-generated-0123456789"


@pytest.fixture(autouse=True)
def event_loop_of_the_process() -> Iterator[None]:
    """Mangum runs the app on the thread's event loop (a Lambda keeps it for its life): give it one, closed after."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def lambda_env(aws: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Lambda's environment from the template: DynamoDB state, the secret's ARN only; a cold start."""
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(Name="signing", SecretString=SECRET)["ARN"]
    monkeypatch.delenv("LOYALTY_SIGNING_SECRET", raising=False)
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET_ARN", arn)
    monkeypatch.setenv("LOYALTY_STATE_BACKEND", "dynamodb")
    monkeypatch.setenv("LOYALTY_STATE_TABLE", "loyalty-state")
    monkeypatch.setattr(lambda_handler, "_handler", None)
    settings = Settings(_env_file=None)
    create_state_table(dynamodb_client(settings), "loyalty-state")
    # what the worker signs with: the same secret, given directly
    return settings.model_copy(update={"signing_secret": SecretStr(SECRET)})


def _function_url_event(method: str, url: str, body: str) -> dict[str, Any]:
    """A Lambda function-URL request (API Gateway HTTP API payload 2.0)."""
    parts = urlsplit(url)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "queryStringParameters": dict(parse_qsl(parts.query)),
        "headers": {
            "content-type": "application/x-www-form-urlencoded",
            "host": "unsubscribe.lambda-url.eu-central-1.on.aws",
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "unsubscribe",
            "domainName": "unsubscribe.lambda-url.eu-central-1.on.aws",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "mail-provider",
            },
            "requestId": "request-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jun/2024:03:00:00 +0000",
            "timeEpoch": 1717210800000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _link(settings: Settings, topic: str = "marketing") -> str:
    key = purpose_key(settings, Purpose.UNSUBSCRIBE)
    return unsubscribe_url(key, "https://unsubscribe.lambda-url.eu-central-1.on.aws/unsubscribe", "C42", "email", topic)


def test_a_one_click_post_to_the_lambda_unsubscribes_with_the_secret_from_secrets_manager(
    lambda_env: Settings,
) -> None:
    event = _function_url_event("POST", _link(lambda_env), "List-Unsubscribe=One-Click")

    response = lambda_handler.handler(event, SimpleNamespace())

    assert response["statusCode"] == 200
    assert SuppressionList.for_settings(lambda_env).customers(Channel.EMAIL, topic="marketing") == {"C42"}


def test_a_forged_link_to_the_lambda_is_refused_and_suppresses_nobody(lambda_env: Settings) -> None:
    forged = lambda_env.model_copy(update={"signing_secret": SecretStr("another-shops-secret-0123456789")})
    event = _function_url_event("POST", _link(forged), "List-Unsubscribe=One-Click")

    response = lambda_handler.handler(event, SimpleNamespace())

    assert response["statusCode"] == 400
    assert SuppressionList.for_settings(lambda_env).customers(Channel.EMAIL, topic="marketing") == frozenset()
