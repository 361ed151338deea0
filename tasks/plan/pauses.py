"""A marketer's pause of one campaign: the setting ``LOYALTY_PAUSED_CAMPAIGNS`` or the Prefect Variable ``paused_campaigns``.

The Variable holds a list of campaign names or a comma-separated string, and can be set in the UI during a
run: planning reads it (a paused campaign's rows are skipped, ``campaign_paused``) and delivery reads it
again between chunks (a paused campaign's messages are ``parked``, their claims not taken). When Prefect
cannot be asked, every marketing campaign counts as paused (fail closed: it waits for a later run);
transactional messages go unless named.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

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
