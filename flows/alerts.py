"""Operator alerts: the events our runs emit, and the Prefect automations that notify an operators' channel.

``setup_ops`` creates (or updates, by name) two automations and the notification block they send to:

- ``loyalty: flow run failed``: a run of one of our flows failed or crashed;
- ``loyalty: run needs attention``: a run's summary reports parked or unknown sends, the traffic alert,
  or a wave that went out late (the events ``loyalty.run.parked``, ``loyalty.run.unknown``,
  ``loyalty.traffic.dropped``, ``loyalty.wave.late``, emitted by the flows).

Event payloads hold counts and days only, never a customer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta
from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events import emit_event

from tasks.report.run_report import RunSummary

EVENT_PARKED = "loyalty.run.parked"
EVENT_UNKNOWN = "loyalty.run.unknown"
EVENT_TRAFFIC = "loyalty.traffic.dropped"
EVENT_LATE_WAVE = "loyalty.wave.late"
ATTENTION_EVENTS = (EVENT_PARKED, EVENT_UNKNOWN, EVENT_TRAFFIC, EVENT_LATE_WAVE)

# The flows whose failures page the operator (their Prefect names).
OUR_FLOWS = ("daily-run", "order-updates", "process-feedback", "backfill", "adhoc-campaign")

FAILED_AUTOMATION = "loyalty: flow run failed"
ATTENTION_AUTOMATION = "loyalty: run needs attention"
WEBHOOK_BLOCK = "loyalty-ops-webhook"

# A wave that goes out this much after its planned time is late.
LATE_AFTER = timedelta(minutes=30)


def _resource(day: date) -> dict[str, str]:
    return {"prefect.resource.id": f"loyalty.day.{day.isoformat()}", "prefect.resource.name": f"loyalty {day}"}


def emit_run_events(summary: RunSummary) -> list[str]:
    """Emit an event for each thing in a run's summary an operator should hear about; return their names."""
    day = summary.as_of
    emitted: list[str] = []
    for name, count in ((EVENT_PARKED, summary.parked), (EVENT_UNKNOWN, summary.unknown + summary.unknown_in_ledger)):
        if count > 0:
            emit_event(name, resource=_resource(day), payload={"day": day.isoformat(), "count": count})
            emitted.append(name)
    traffic = summary.kpis.traffic if summary.kpis is not None else None
    if traffic is not None and traffic.alert:
        payload = {"day": traffic.day.isoformat(), "views": traffic.views, "baseline": round(traffic.baseline, 1)}
        emit_event(EVENT_TRAFFIC, resource=_resource(day), payload=payload)
        emitted.append(EVENT_TRAFFIC)
    return emitted


def emit_late_wave(day: date, minutes_late: float, shards: int) -> None:
    """Emit ``loyalty.wave.late``: a wave of ``day`` went out ``minutes_late`` minutes after its time."""
    payload = {"day": day.isoformat(), "minutes_late": round(minutes_late), "shards": shards}
    emit_event(EVENT_LATE_WAVE, resource=_resource(day), payload=payload)


@dataclass(frozen=True)
class OpsSetup:
    """What ``setup_ops`` left on the server: the notification blocks and the automations, by name."""

    blocks: dict[str, UUID]
    automations: dict[str, UUID]


def _notify(block_id: UUID) -> tuple[SendNotification, SendNotification]:
    failed = SendNotification(
        block_document_id=block_id,
        subject="Loyalty Flows: {{ flow.name }} run {{ flow_run.name }} is {{ flow_run.state.name }}",
        body="Flow run {{ flow_run.name }} of {{ flow.name }} ended {{ flow_run.state.name }}: "
        "{{ flow_run.state.message }}. Open it in the Prefect UI to see its logs.",
    )
    attention = SendNotification(
        block_document_id=block_id,
        subject="Loyalty Flows: {{ event.event }}",
        body="{{ event.event }} for {{ event.payload.day }}: {{ event.payload }}. "
        "See the run's summary artifact in the Prefect UI.",
    )
    return failed, attention


async def _upsert(automation: Automation) -> UUID:
    """Create the automation, or update the one of the same name (never a duplicate)."""
    try:
        existing = await Automation.aread(name=automation.name)
    except ValueError:
        created = await automation.acreate()
        assert created.id is not None
        return created.id
    assert existing.id is not None
    automation.id = existing.id
    await automation.aupdate()
    return existing.id


def setup_ops(webhook: str | None = None, sns_topic: str | None = None) -> OpsSetup:
    """Create or update the operators' notification block and the two automations that send to it (``asetup_ops``)."""
    return asyncio.run(asetup_ops(webhook, sns_topic))


async def asetup_ops(webhook: str | None = None, sns_topic: str | None = None) -> OpsSetup:
    """Create or update the operators' notification block and the two automations that send to it.

    ``webhook``: a URL that receives a JSON POST ``{"text": ..., "title": ...}`` per alert (Slack, Teams,
    a pager's webhook). ``sns_topic``: refused: it needs prefect-aws, which this project does not install.
    """
    if sns_topic is not None:
        raise ValueError("SNS notifications need prefect-aws, which is not installed: use --webhook")
    if webhook is None:
        raise ValueError("give a --webhook URL for the operators' channel")
    block = CustomWebhookNotificationBlock(
        name="loyalty-ops",
        url=webhook,
        json_data={"title": "{{name}}", "text": "{{subject}}\n{{body}}"},
    )
    block_id = await block.asave(WEBHOOK_BLOCK, overwrite=True)
    failed, attention = _notify(block_id)
    automations = {
        FAILED_AUTOMATION: Automation(
            name=FAILED_AUTOMATION,
            description="A run of a Loyalty Flows flow failed or crashed.",
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(OUR_FLOWS)},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[failed],
        ),
        ATTENTION_AUTOMATION: Automation(
            name=ATTENTION_AUTOMATION,
            description="A run parked or lost sends, the shop's traffic dropped, or a wave went out late.",
            trigger=EventTrigger(
                expect=set(ATTENTION_EVENTS),
                match={"prefect.resource.id": "loyalty.day.*"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[attention],
        ),
    }
    return OpsSetup(
        blocks={WEBHOOK_BLOCK: block_id},
        automations={name: await _upsert(a) for name, a in automations.items()},
    )
