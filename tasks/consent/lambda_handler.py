"""The unsubscribe endpoint (and the survey's answer pages) on AWS Lambda: ``make_app`` behind Mangum, built on
the first call.

Deployed by ``infra/loyalty.yaml`` with a function URL. Nothing is built at import time: the first
invocation reads ``Settings()`` from the environment and, when ``LOYALTY_SIGNING_SECRET`` is unset,
the signing secret from Secrets Manager (``LOYALTY_SIGNING_SECRET_ARN``). Suppressions go to the
backend the settings choose (``LOYALTY_STATE_BACKEND=dynamodb`` on Lambda: there is no state folder), and so
do survey answers and preference records (``SURVEY#<customer>``, ``PREFERENCES#<customer>`` items on the same
table).
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum
from pydantic import SecretStr

from tasks.consent.unsubscribe import make_app
from tasks.kernel.aws import client
from tasks.kernel.settings import Settings

_handler: Mangum | None = None


def lambda_settings() -> Settings:
    """Settings from the environment, the signing secret read from Secrets Manager when only its ARN is given."""
    settings = Settings()
    if settings.signing_secret is None and settings.signing_secret_arn:
        secret = client("secretsmanager", settings).get_secret_value(SecretId=settings.signing_secret_arn)
        settings = settings.model_copy(update={"signing_secret": SecretStr(secret["SecretString"])})
    return settings


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (``tasks.consent.lambda_handler.handler``): a function-URL event to the app."""
    global _handler
    if _handler is None:
        _handler = Mangum(make_app(lambda_settings()), lifespan="off")
    return _handler(event, context)
