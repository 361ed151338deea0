"""Open the ledger the settings choose: the SQLite file in the state folder (one host), or DynamoDB (several)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from tasks.ledger.dynamodb import DynamoDbLedger
from tasks.ledger.protocol import Ledger
from tasks.ledger.sqlite import SqliteLedger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from tasks.kernel.settings import Settings


def open_ledger(settings: Settings, dynamodb_client_factory: Callable[[Settings], DynamoDBClient]) -> Ledger:
    """Open the ledger the settings choose: the SQLite file in the state folder, or the DynamoDB table."""
    lease = timedelta(seconds=settings.ledger_lease_seconds)
    if settings.shared_backend == "dynamodb":  # LOYALTY_STATE_BACKEND, else LOYALTY_LEDGER_BACKEND
        keep = timedelta(days=settings.state_keep_days) if settings.state_keep_days else None
        return DynamoDbLedger(dynamodb_client_factory(settings), settings.ledger_table, lease=lease, keep=keep)
    return SqliteLedger(settings.state_dir / "ledger.sqlite", lease=lease)
