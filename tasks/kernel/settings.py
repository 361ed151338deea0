"""Run-time configuration: one pydantic-settings model, read from ``LOYALTY_*``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A local hour of the day, as quiet hours are given.
Hour = Annotated[int, Field(ge=0, le=23)]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def catalog_root() -> Path:
    """The folder holding ``campaigns/`` and ``templates/``: the repository's, or the installed package's copy.

    A working copy (or an editable install) reads them from ``PROJECT_ROOT``. The wheel carries them in
    ``tasks/_catalog/`` (pyproject's ``force-include``), since an installed ``PROJECT_ROOT`` is site-packages.
    """
    installed = Path(__file__).resolve().parents[1] / "_catalog"
    return installed if installed.is_dir() else PROJECT_ROOT


# Hosts of the local AWS: the demo's moto server listens on loopback only.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


# Run folders kept in S3 are worked on in a mirror here, under the temporary folder ($TMPDIR): see tasks/kernel/runstore.py.
MIRROR_FOLDER = "loyalty-runs"


def mirror_root() -> Path:
    """The folder that holds the local mirrors of S3 run folders: ``$TMPDIR/loyalty-runs``."""
    return Path(tempfile.gettempdir()).resolve() / MIRROR_FOLDER


def s3_mirror(uri: str) -> Path:
    """The local mirror of the run folders at ``s3://bucket/prefix``: ``$TMPDIR/loyalty-runs/bucket/prefix``."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    parts = [p for p in prefix.split("/") if p]
    if not bucket or any(p in {".", ".."} for p in parts):
        raise ValueError(f"{uri}: not an S3 location; write s3://bucket or s3://bucket/prefix")
    return mirror_root().joinpath(bucket, *parts)


def uses_local_aws(settings: Settings) -> bool:
    """Whether AWS is the local one (the demo's moto on loopback): the endpoint, set or from ``AWS_ENDPOINT_URL``, is local.

    Real sends to a local AWS reach nobody, so what only protects real customers (one shared signing
    secret, a feedback topic allow-list) is not required there.
    """
    endpoint = settings.aws_endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return False
    return urlsplit(endpoint).hostname in _LOOPBACK_HOSTS


class Settings(BaseSettings):
    """Everything a run needs to know about its environment.

    Build it once in the flow (never at import time) and pass it down.
    Standard AWS configuration (``AWS_ENDPOINT_URL``, ``AWS_REGION``,
    credentials, profiles) is honoured by boto3 itself.
    """

    # validate_by_name: fields with an alias (the signing secret's old name) are still set by name in code
    model_config = SettingsConfigDict(
        env_prefix="LOYALTY_", env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_by_name=True
    )

    data: str = Field(
        "demo/shop",
        description="Where the shop's contract tables are: a folder or s3://bucket/prefix of CSV or Parquet files.",
    )
    output_dir: Path = Field(
        Path("out"),
        description="Where each run writes its output, under <output_dir>/<as_of>/: a folder, or s3://bucket/prefix "
        "(each run then works in a mirror under the temporary folder and syncs its folder with S3).",
    )
    output_s3: str | None = Field(
        None,
        description="Set from LOYALTY_OUTPUT_DIR=s3://bucket/prefix: where the run folders live; output_dir is then "
        "their local mirror, $TMPDIR/loyalty-runs/<bucket>/<prefix>.",
    )
    state_dir: Path = Field(
        Path(".loyalty"),
        description="Where durable state lives: the send ledger, suppressions and the articles given (SQLite).",
    )
    campaigns_dir: Path = Field(
        default_factory=lambda: catalog_root() / "campaigns",
        description="The campaign catalog: one YAML file per campaign. Default: the project's campaigns/.",
    )
    templates_dir: Path = Field(
        default_factory=lambda: catalog_root() / "templates",
        description="Jinja2 message templates. Default: the project's templates/.",
    )
    shop_timezone: str = Field(
        "Europe/Moscow", description="The shop's time zone: the daily run is scheduled at 06:00 there."
    )
    aws_region: str = Field("eu-central-1", description="AWS region for SES, SNS, S3 and DynamoDB.")
    aws_endpoint_url: str | None = Field(
        None,
        description="Endpoint for every AWS client (a local moto server, say). AWS_ENDPOINT_URL works too.",
    )
    ledger_backend: Literal["sqlite", "dynamodb"] = Field(
        "sqlite",
        description="Where the send ledger lives: a SQLite file in the state folder, or a DynamoDB table.",
    )
    ledger_table: str = Field(
        "loyalty-send-ledger", description="DynamoDB table of the send ledger (when ledger_backend is dynamodb)."
    )
    state_backend: Literal["sqlite", "dynamodb"] | None = Field(
        None,
        description="Where all contact-deciding state lives (ledger, suppressions, send history, coupons, "
        "watermarks): SQLite files in the state folder, or DynamoDB. Unset: ledger_backend decides (its old name).",
    )
    state_table: str = Field(
        "loyalty-state", description="DynamoDB table of suppressions, send history, coupons and watermarks."
    )
    ledger_lease_seconds: int = Field(
        900,
        gt=0,
        description="Seconds a claim may stay unmarked before it counts as abandoned (UNKNOWN): "
        "marketing is then never resent, transactional is resent.",
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
    sms_sender_id: str = Field(
        "LoyaltyDemo",
        max_length=11,
        pattern=r"^[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*$",
        description="Alphanumeric SMS sender ID: 1-11 letters or digits, at least one letter (where the country allows it).",
    )
    sms_max_parts: int = Field(
        3, ge=1, le=10, description="Most parts one SMS may take; a longer text is refused before it is sent."
    )
    send_concurrency: int = Field(8, ge=1, le=64, description="Concurrent provider calls inside one shard.")
    send_connect_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds to connect to SES/SNS; a send that cannot connect is retried."
    )
    send_read_timeout: float = Field(
        15.0,
        gt=0,
        le=120,
        description="Seconds to wait for SES/SNS to answer a send; no answer leaves its outcome unknown (never resent).",
    )
    send_token_wait: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Longest a send waits for its rate tokens (email_rate, sms_rate); then it is left for a later run.",
    )
    shard_size: int = Field(5000, ge=1, description="Messages per delivery task run: Prefect orchestrates shards.")
    partitions: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Partitions of the day's customers (a stable hash of the id), each planned and rendered by its own "
        "daily-partition flow run; the deployed daily run submits them to the work pool. 1: the whole day in one run. "
        "Unset: one per partition_customers customers loaded.",
    )
    partition_customers: int = Field(
        250_000,
        ge=1,
        description="With partitions unset, customers per partition: a bigger shop is split (a partition of 250,000 "
        "customers plans and renders in one process of about 5 GB).",
    )
    task_workers: int = Field(2, ge=1, le=32, description="Task runs at once (bounded thread pool).")
    render_processes: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Processes rendering the plan's shards at once (one shard per task run); default: the CPUs this "
        "process may use. 1 renders in the flow's own process.",
    )
    outbox_sample: int = Field(
        20,
        ge=0,
        description="Messages per campaign, channel and language of each render shard written to the outbox as "
        "HTML and text files to open (the first ones in the shard's order); every message is in the rendered "
        "Parquet either way. 0: every message (the demo writes them all).",
    )
    dry_run: bool = Field(False, description="Render and record everything but send nothing.")
    unsubscribe_base_url: str = Field(
        "https://shop.example.com/unsubscribe", description="HTTPS one-click unsubscribe endpoint."
    )
    unsubscribe_mailto: str = Field("unsubscribe@shop.example.com", description="mailto: address for List-Unsubscribe.")
    survey_base_url: str = Field(
        "https://shop.example.com/survey",
        description="HTTPS address of the survey pages (the unsubscribe endpoint's app serves them at /survey).",
    )
    preferences_base_url: str = Field(
        "https://shop.example.com/preferences",
        description="HTTPS address of the preferences page (the unsubscribe endpoint's app serves it at /preferences).",
    )
    survey_is_service: bool = Field(
        False,
        description="Send the after-delivery survey as a service message (no marketing consent needed, no budget); "
        "by default it is marketing: it needs marketing consent and a marketing unsubscribe stops it.",
    )
    signing_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("LOYALTY_SIGNING_SECRET", "LOYALTY_UNSUBSCRIBE_SECRET"),
        description="The shop's one signing secret (at least 16 random bytes), the same on every host: unsubscribe "
        "links, coupon codes, reorder links and address hashes each use a key derived from it. Required when "
        "messages really go out; unset (dry runs and the local AWS only): a random key kept in the state folder. "
        "LOYALTY_UNSUBSCRIBE_SECRET is its old name and still works.",
    )
    signing_secrets_old: list[SecretStr] = Field(
        default_factory=list,
        validation_alias=AliasChoices("LOYALTY_SIGNING_SECRETS_OLD"),
        description='Earlier signing secrets, as JSON (["old-secret"]): links they signed still verify after a '
        "rotation; nothing new is signed with them.",
    )
    signing_secret_arn: str | None = Field(
        None,
        description="Secrets Manager ARN of the signing secret, read when signing_secret is unset "
        "(the unsubscribe Lambda of infra/loyalty.yaml).",
    )
    feedback_queue_url: str | None = Field(
        None,
        description=(
            "SQS queue (subscribed to the SNS topic SES sends bounces and complaints to) read by the"
            " process_feedback flow. Unset: only SMS opt-outs are read."
        ),
    )
    feedback_topic_arns: list[str] | None = Field(
        None,
        description="SNS topics whose notifications the feedback queue may carry, as JSON "
        '(["arn:aws:sns:eu-central-1:123456789012:ses-feedback"]); a message from any other topic is dropped '
        "unread. Unset: any topic on the local AWS (the demo); on real AWS the queue is not read until it is set.",
    )
    state_keep_days: int = Field(
        400,
        ge=0,
        description="Days DynamoDB keeps a ledger entry (from its claim), a send-history row (from its day) and a "
        "coupon (from its last valid day) before its TTL deletes it; a replay of a day older than this is refused, "
        "since the ledger could no longer stop a second send. 0: keep forever (and never refuse).",
    )
    retention_days: int = Field(
        90,
        ge=0,
        description="Days a run folder keeps its customer-level files (snapshots, profiles, plans, rendered "
        "messages, outboxes); older ones keep only their summary and reports. 0: keep everything forever.",
    )
    call_list_days: int = Field(
        30,
        ge=1,
        description="Days an incident stays on support's call list after it happened (``loyalty calls``): nobody "
        "stays on it for good.",
    )
    call_attempts: int = Field(
        3,
        ge=1,
        description="Calls without an answer after which an incident leaves support's call list.",
    )
    shop_name: str = Field("Loyalty Flows Demo Shop", description="Shop name shown in messages.")
    shop_url: str = Field("https://shop.example.com", description="Shop home page used in messages.")
    quiet_hours_start: int = Field(
        21, ge=0, le=23, description="Local hour quiet hours start: nothing is sent after it."
    )
    quiet_hours_end: int = Field(
        9, ge=0, le=23, description="Local hour quiet hours end: deferred messages go out then."
    )
    quiet_hours_by_country: dict[str, tuple[Hour, Hour]] = Field(
        default_factory=dict,
        description='Per-country quiet hours as JSON, e.g. {"PL": [20, 8]} (ISO-2 country: [start, end]).',
    )
    paused_channels: set[str] = Field(
        default_factory=set,
        description='Kill switch: channels not to send on, as JSON (["sms"]). The Prefect Variable paused_channels works too.',
    )
    paused_campaigns: set[str] = Field(
        default_factory=set,
        description='Campaigns not to send, as JSON (["winback"]). The Prefect Variable paused_campaigns works too.',
    )
    marketing_per_day: int = Field(1, ge=0, description="Marketing messages a customer may get in one day.")
    marketing_per_week: int = Field(3, ge=0, description="Marketing messages a customer may get in any 7 days.")
    return_goal: Literal["weekly", "monthly", "quarterly"] = Field(
        "monthly", description="How often the shop wants buyers back; lifecycle stages follow from it."
    )
    lifecycle_factors: tuple[float, float, float] = Field(
        (1.5, 3.0, 6.0),
        description="Multiples of a customer's rhythm that end the active, at-risk and lapsed stages, as JSON.",
    )
    rfm_recency_edges: tuple[float, float, float, float] | None = Field(
        None, description="Four ascending day counts cutting recency into scores 5..1, as JSON. Unset: quintiles."
    )
    rfm_frequency_edges: tuple[float, float, float, float] | None = Field(
        None, description="Four ascending purchase-day counts cutting frequency into scores 1..5. Unset: quintiles."
    )
    rfm_monetary_edges: tuple[float, float, float, float] | None = Field(
        None, description="Four ascending spend totals cutting monetary value into scores 1..5. Unset: quintiles."
    )
    vip_share: float = Field(0.05, gt=0, lt=1, description="Share of buyers who are VIP, by predicted value.")
    interest_half_life_days: float = Field(90.0, gt=0, description="Half-life of a signal in category interests.")
    unhappy_window_days: int = Field(90, ge=1, description="How long after an incident a customer counts as unhappy.")
    unhappy_max_rating: int = Field(2, ge=1, le=4, description="Review ratings at or below this are incidents.")
    late_after_days: int = Field(
        7, ge=1, description="Without a promised date, a delivery later than this after the order is late."
    )
    clv_horizon_days: int = Field(365, ge=1, description="Horizon of predicted customer value.")
    clv_discount_rate: float = Field(0.10, ge=0, lt=1, description="Yearly discount rate of predicted value.")
    traffic_drop_threshold: float = Field(
        0.4, gt=0, lt=1, description="A day's views this far below the 28-day mean raise the traffic-drop alert."
    )
    recommend_model: str = Field(
        "auto", pattern=r"^(auto|ease|item_knn|popular)$", description="Recommender: auto = ease for small catalogs."
    )
    picks_per_customer: int = Field(6, ge=1, le=50, description="Products picked per customer for messages.")
    picks_per_category: int = Field(2, ge=1, description="At most this many picks from one category.")
    picks_exclusive_groups: list[str] = Field(
        default_factory=lambda: ["cat", "dog"],
        description="Category prefixes that exclude each other: a cat owner is not shown dog_* products.",
    )
    pet_interests: list[str] = Field(
        default_factory=lambda: ["cat", "dog"],
        description="Category prefixes that mean a pet: a customer whose top category is one of them (cat_food: cat) "
        "gets pet wording in messages; nobody else does.",
    )
    replenish_min_purchases: int = Field(
        3, ge=2, description="Distinct purchase days of a product that make it a regular re-buy."
    )
    points_per_unit: float = Field(
        1.0, ge=0, description="Loyalty points earned per unit of an order's total (rounded down)."
    )
    points_valid_days: int = Field(365, ge=1, description="Days loyalty points last after they are earned.")
    audiences: str = Field(
        "",
        description="Hashed audiences for ad platforms the audiences flow writes each day into the run folder, as "
        "segment:platform,platform;segment:platform (e.g. lapsed_valuable:meta,google). Empty: none.",
    )
    audience_recent_buyer_days: int = Field(
        14, ge=0, description="A win-back audience leaves out customers who bought this many days ago or fewer."
    )

    @model_validator(mode="before")
    @classmethod
    def _output_in_s3(cls, data: Any) -> Any:
        """Keep an ``s3://`` output as ``output_s3`` and work in its mirror (a ``Path`` would mangle the URI)."""
        if not isinstance(data, dict):
            return data
        output = data.get("output_dir")
        uri = str(output) if isinstance(output, str) and output.startswith("s3://") else data.get("output_s3")
        if not uri:
            return data
        uri = "s3://" + str(uri).removeprefix("s3://").rstrip("/")
        return {**data, "output_s3": uri, "output_dir": s3_mirror(uri)}

    @property
    def shared_backend(self) -> Literal["sqlite", "dynamodb"]:
        """The backend of contact-deciding state: ``state_backend``, else ``ledger_backend`` (its alias)."""
        return self.state_backend or self.ledger_backend

    def partitions_for(self, customers: int) -> int:
        """The day's partitions for a shop of ``customers``: ``partitions`` if set, else one per
        ``partition_customers`` (at least one)."""
        return self.partitions or max(1, -(-customers // self.partition_customers))
