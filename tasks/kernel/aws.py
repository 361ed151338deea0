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


def client(service: str, settings: Settings) -> Any:
    """Build a boto3 client; AWS_ENDPOINT_URL and profiles work as boto3 documents."""
    kwargs: dict[str, Any] = {"region_name": settings.aws_region, "config": _config()}
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
