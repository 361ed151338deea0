"""The one place AWS clients are built: region, endpoint, retries and timeouts from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from tasks.kernel.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sns import SNSClient


def _config() -> Config:
    # total_max_attempts counts attempts (max_attempts would count retries)
    return Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=30)


def _send_config(settings: Settings) -> Config:
    """One attempt per call for the services that send messages (SES, SNS).

    A send is not idempotent: botocore would resend after a lost answer (a closed connection, a
    read timeout) and the customer would get a second copy. Delivery's own loop retries, and only
    what surely did not go through. DynamoDB and S3 keep botocore's retries: conditional writes and
    reads are safe to repeat.
    """
    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=settings.send_connect_timeout,
        read_timeout=settings.send_read_timeout,
    )


SENDING_SERVICES = frozenset({"ses", "sesv2", "sns"})


def client(service: str, settings: Settings) -> Any:
    """Build a boto3 client; AWS_ENDPOINT_URL and profiles work as boto3 documents."""
    config = _send_config(settings) if service in SENDING_SERVICES else _config()
    kwargs: dict[str, Any] = {"region_name": settings.aws_region, "config": config}
    if settings.aws_endpoint_url:
        kwargs["endpoint_url"] = settings.aws_endpoint_url
    return boto3.session.Session().client(service, **kwargs)  # type: ignore[call-overload]


def ses_client(settings: Settings) -> SESClient:
    """Build an SES (v1) client: raw sends keep every header."""
    return client("ses", settings)  # type: ignore[no-any-return]


def dynamodb_client(settings: Settings) -> DynamoDBClient:
    """Build a DynamoDB client (the ledger's AWS backend)."""
    return client("dynamodb", settings)  # type: ignore[no-any-return]


def sns_client(settings: Settings) -> SNSClient:
    """Build an SNS client (SMS)."""
    return client("sns", settings)  # type: ignore[no-any-return]


def s3_client(settings: Settings) -> S3Client:
    """Build an S3 client."""
    return client("s3", settings)  # type: ignore[no-any-return]


def enable_expiry(client: DynamoDBClient, name: str) -> None:
    """Let DynamoDB delete items whose ``expires_at`` (epoch seconds) has passed, as infra/loyalty.yaml's tables do."""
    if client.describe_time_to_live(TableName=name)["TimeToLiveDescription"].get("TimeToLiveStatus") in (
        "ENABLED",
        "ENABLING",
    ):
        return
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
