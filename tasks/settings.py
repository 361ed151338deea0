"""Run-time configuration: one pydantic-settings model, read from ``LOYALTY_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Everything a run needs to know about its environment.

    Build it once in the flow (never at import time) and pass it down.
    Standard AWS configuration (``AWS_ENDPOINT_URL``, ``AWS_REGION``,
    credentials, profiles) is honoured by boto3 itself.
    """

    model_config = SettingsConfigDict(env_prefix="LOYALTY_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data: str = Field(
        "demo/shop",
        description="Where the shop's contract tables are: a folder or s3://bucket/prefix of CSV or Parquet files.",
    )
    output_dir: Path = Field(Path("out"), description="Where each run writes its output, under <output_dir>/<as_of>/.")
    state_dir: Path = Field(
        Path(".loyalty"), description="Where durable state lives: the send ledger and suppressions (SQLite)."
    )
    campaigns_dir: Path = Field(
        PROJECT_ROOT / "campaigns", description="The campaign catalog: one YAML file per campaign."
    )
    templates_dir: Path = Field(PROJECT_ROOT / "templates", description="Jinja2 message templates.")
    shop_timezone: str = Field(
        "Europe/Moscow", description="The shop's time zone: the daily run is scheduled at 06:00 there."
    )
    aws_region: str = Field("eu-central-1", description="AWS region for SES, SNS, S3 and DynamoDB.")
    aws_endpoint_url: str | None = Field(
        None,
        description="Endpoint for every AWS client (a local moto server, say). AWS_ENDPOINT_URL works too.",
    )
    sender: str = Field(
        "Loyalty Flows Demo <hello@shop.example.com>",
        description="From: address; its identity must be verified in SES.",
    )
    ses_configuration_set: str | None = Field(
        None, description="SES configuration set for event publishing (bounces, complaints)."
    )
    email_rate: float = Field(14.0, gt=0, description="Email messages per second (the SES account's max send rate).")
    sms_rate: float = Field(1.0, gt=0, description="SMS parts per second (the SNS/End User Messaging throughput).")
    send_concurrency: int = Field(8, ge=1, le=64, description="Concurrent provider calls inside one shard.")
    shard_size: int = Field(5000, ge=1, description="Messages per delivery task run: Prefect orchestrates shards.")
    task_workers: int = Field(2, ge=1, le=32, description="Task runs at once (bounded thread pool).")
    dry_run: bool = Field(False, description="Render and record everything but send nothing.")
    unsubscribe_base_url: str = Field(
        "https://shop.example.com/unsubscribe", description="HTTPS one-click unsubscribe endpoint."
    )
    unsubscribe_mailto: str = Field("unsubscribe@shop.example.com", description="mailto: address for List-Unsubscribe.")
    unsubscribe_secret: SecretStr | None = Field(
        None,
        description="HMAC key for unsubscribe tokens. Unset: a random key is created once in the state folder.",
    )
    shop_name: str = Field("Loyalty Flows Demo Shop", description="Shop name shown in messages.")
    shop_url: str = Field("https://shop.example.com", description="Shop home page used in messages.")
