"""A marketer's pause of one campaign: the setting ``LOYALTY_PAUSED_CAMPAIGNS`` or the Prefect Variable ``paused_campaigns``.

The Variable holds a list of campaign names or a comma-separated string, and can be set in the UI during a
run: planning reads it (a paused campaign's rows are skipped, ``campaign_paused``) and delivery reads it
again between chunks (a paused campaign's messages are ``parked``, their claims not taken). When Prefect
cannot be asked, every marketing campaign counts as paused (fail closed: it waits for a later run);
transactional messages go unless named.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prefect.client.orchestration import get_client
from prefect.variables import Variable

from tasks.kernel.enums import MessageKind
from tasks.kernel.settings import Settings

logger = logging.getLogger("loyalty.plan")

PAUSED_CAMPAIGNS_VARIABLE = "paused_campaigns"


@dataclass(frozen=True)
class CampaignPauses:
    """The campaigns not to send now: those named, and every marketing one when the switch is unreadable."""

    names: frozenset[str] = frozenset()
    all_marketing: bool = False

    def stops(self, campaign: str, kind: MessageKind | str) -> bool:
        """Return whether a message of ``campaign`` (of ``kind``) must not go out now."""
        return campaign in self.names or (self.all_marketing and MessageKind(kind) is MessageKind.MARKETING)


# Nothing paused: the default of planning and delivery.
NO_PAUSES = CampaignPauses()


def read_variable(name: str) -> object:
    """The value of a Prefect Variable (None when unset); raises when Prefect cannot be asked."""
    return Variable.get(name, default=None)


@contextmanager
def variable_reader() -> Iterator[Callable[[str], object]]:
    """``read_variable`` through one Prefect client, for the many reads of a delivery shard.

    ``Variable.get`` opens a new client each time, and a new client costs about 60 ms of CPU (its TLS
    context loads the CA bundle): read every 200 messages, that was most of delivery's own CPU. When no
    client can be opened, each read goes through ``read_variable`` (and fails there, closed, as before).
    """
    try:
        client = get_client(sync_client=True).__enter__()
    except Exception:
        yield read_variable
        return

    def read(name: str) -> object:
        variable = client.read_variable_by_name(name)
        return None if variable is None else variable.value

    try:
        yield read
    finally:
        client.__exit__(None, None, None)


def campaign_pauses(settings: Settings, read: Callable[[str], object] = read_variable) -> CampaignPauses:
    """Return the campaigns paused now: the setting plus the Prefect Variable ``paused_campaigns``."""
    names = set(settings.paused_campaigns)
    try:
        value = read(PAUSED_CAMPAIGNS_VARIABLE)
    except Exception as exc:
        logger.warning("campaign pause switch unreadable (%s): every marketing campaign paused", type(exc).__name__)
        return CampaignPauses(frozenset(names), all_marketing=True)
    return CampaignPauses(frozenset(names | listed_names(value)))


def listed_names(value: object) -> frozenset[str]:
    """The names an operator's switch Variable holds: a list, or one comma-separated string (anything else: none)."""
    listed: list[object] = (
        list(value.split(",")) if isinstance(value, str) else list(value) if isinstance(value, list) else []
    )
    return frozenset(name for n in listed if (name := str(n).strip()))
