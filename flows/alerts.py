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

from prefect.automations import Automation, EventTrigger, Posture, RunDeployment, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound

from tasks.report.run_report import RunSummary

EVENT_PARKED = "loyalty.run.parked"
EVENT_UNKNOWN = "loyalty.run.unknown"
EVENT_TRAFFIC = "loyalty.traffic.dropped"
EVENT_LATE_WAVE = "loyalty.wave.late"
ATTENTION_EVENTS = (EVENT_PARKED, EVENT_UNKNOWN, EVENT_TRAFFIC, EVENT_LATE_WAVE)

# The flows whose failures page the operator (their Prefect names).
OUR_FLOWS = ("daily-run", "order-updates", "process-feedback", "backfill", "adhoc-campaign", "send-wave")

FAILED_AUTOMATION = "loyalty: flow run failed"
ATTENTION_AUTOMATION = "loyalty: run needs attention"
WEBHOOK_BLOCK = "loyalty-ops-webhook"
# The deployment that publishes an alert to the operators' SNS topic (flows/notify.py).
NOTIFY_DEPLOYMENT = "notify-operators/notify-operators"

FAILED_SUBJECT = "Loyalty Flows: {{ flow.name }} run {{ flow_run.name }} is {{ flow_run.state.name }}"
FAILED_BODY = (
    "Flow run {{ flow_run.name }} of {{ flow.name }} ended {{ flow_run.state.name }}: "
    "{{ flow_run.state.message }}. Open it in the Prefect UI to see its logs."
)
ATTENTION_SUBJECT = "Loyalty Flows: {{ event.event }}"
ATTENTION_BODY = "{{ event.event }} for {{ event.payload.day }}: {{ event.payload }}. See the run's summary artifact in the Prefect UI."

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
    failed = SendNotification(block_document_id=block_id, subject=FAILED_SUBJECT, body=FAILED_BODY)
    attention = SendNotification(block_document_id=block_id, subject=ATTENTION_SUBJECT, body=ATTENTION_BODY)
    return failed, attention


def _publish(deployment_id: UUID, topic: str) -> tuple[RunDeployment, RunDeployment]:
    """Run ``notify-operators`` with the alert's subject and text (templated from the event) for ``topic``."""
    failed = RunDeployment(
        source="selected",
        deployment_id=deployment_id,
        parameters={"subject": FAILED_SUBJECT, "message": FAILED_BODY, "topic_arn": topic},
    )
    attention = RunDeployment(
        source="selected",
        deployment_id=deployment_id,
        parameters={"subject": ATTENTION_SUBJECT, "message": ATTENTION_BODY, "topic_arn": topic},
    )
    return failed, attention


async def _notify_deployment() -> UUID:
    """The ``notify-operators`` deployment's id; a clear error when it was never deployed."""
    async with get_client() as prefect:
        try:
            return (await prefect.read_deployment_by_name(NOTIFY_DEPLOYMENT)).id
        except ObjectNotFound:
            raise ValueError(
                f"no {NOTIFY_DEPLOYMENT} deployment on this Prefect server: deploy it first "
                "(loyalty serve, or prefect deploy --all), then run setup-ops again"
            ) from None


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
    """Create or update the operators' notification channels and the two automations that alert them.

    ``webhook``: a URL that receives a JSON POST ``{"text": ..., "title": ...}`` per alert (Slack, Teams,
    a pager's webhook), through a notification block. ``sns_topic``: the operators' SNS topic (the stack's
    ``OperatorsTopicArn``); each alert runs the ``notify-operators`` deployment, which publishes to it.
    Either or both.
    """
    if webhook is None and sns_topic is None:
        raise ValueError("give the operators' channel: --sns-topic ARN, --webhook URL, or both")
    blocks: dict[str, UUID] = {}
    failed: list[SendNotification | RunDeployment] = []
    attention: list[SendNotification | RunDeployment] = []
    if sns_topic is not None:
        if not sns_topic.startswith("arn:") or ":sns:" not in sns_topic:
            raise ValueError(f"{sns_topic}: not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")
        on_failure, on_attention = _publish(await _notify_deployment(), sns_topic)
        failed.append(on_failure)
        attention.append(on_attention)
    if webhook is not None:
        block = CustomWebhookNotificationBlock(
            name="loyalty-ops",
            url=webhook,
            json_data={"title": "{{name}}", "text": "{{subject}}\n{{body}}"},
        )
        blocks[WEBHOOK_BLOCK] = await block.asave(WEBHOOK_BLOCK, overwrite=True)
        notify_failure, notify_attention = _notify(blocks[WEBHOOK_BLOCK])
        failed.append(notify_failure)
        attention.append(notify_attention)
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
            actions=failed,
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
            actions=attention,
        ),
    }
    return OpsSetup(
        blocks=blocks,
        automations={name: await _upsert(a) for name, a in automations.items()},
    )
