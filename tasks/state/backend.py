"""Open the state the settings choose: files in the state folder (one host), or one DynamoDB table (several)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from tasks.state.dynamodb import open_dynamodb_state
from tasks.state.protocol import State, SuppressionStore
from tasks.state.sqlite import SUPPRESSIONS_FILE, SqliteSuppressions, open_sqlite_state

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from tasks.kernel.settings import Settings


def open_state(
    settings: Settings, dynamodb_client_factory: Callable[[Settings], DynamoDBClient] | None = None
) -> State:
    """Open the stores on the backend ``LOYALTY_STATE_BACKEND`` (else ``LOYALTY_LEDGER_BACKEND``) chooses."""
    if settings.shared_backend == "dynamodb":
        if dynamodb_client_factory is None:
            from tasks.kernel.aws import dynamodb_client

            dynamodb_client_factory = dynamodb_client
        keep = timedelta(days=settings.state_keep_days) if settings.state_keep_days else None
        return open_dynamodb_state(dynamodb_client_factory(settings), settings.state_table, keep)
    return open_sqlite_state(settings.state_dir)


def open_suppressions(
    settings: Settings, dynamodb_client_factory: Callable[[Settings], DynamoDBClient] | None = None
) -> SuppressionStore:
    """Open only the suppressions of the chosen backend (delivery reads them before every chunk)."""
    if settings.shared_backend == "dynamodb":
        return open_state(settings, dynamodb_client_factory).suppressions  # no file opened: as cheap
    return SqliteSuppressions(settings.state_dir / SUPPRESSIONS_FILE)
