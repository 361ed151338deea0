"""The deployment surface: what operators see in prefect.yaml and what ``loyalty serve`` builds.

Both are pinned in tests/golden/deployments.json, so a changed name, entrypoint, cron, time zone or
default parameter is a reviewed diff. Rewrite the golden file with ``UPDATE_GOLDEN=1``.
No Prefect server is needed: building a RunnerDeployment and reading prefect.yaml are local.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

# PrefectYamlModel is Prefect's own model of prefect.yaml, the one `prefect deploy` validates the file
# with (prefect/cli/deploy/_config.py, _load_deploy_configs_and_actions). Private: if a Prefect upgrade
# moves it, this import fails loudly rather than the schema going unchecked.
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.client.schemas.schedules import CronSchedule
from prefect.utilities.templating import apply_values

from flows.serve import deployments
from tasks.kernel.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO_ROOT / "prefect.yaml"
GOLDEN = REPO_ROOT / "tests" / "golden" / "deployments.json"
TZ_ENV = "LOYALTY_SHOP_TIMEZONE"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect makes a served deployment's entrypoint relative to the working directory."""
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.delenv(TZ_ENV, raising=False)


def settings() -> Settings:
    """Settings from the environment only: a developer's .env must not move the snapshot."""
    return Settings(_env_file=None)


def yaml_deployments() -> list[dict[str, Any]]:
    """prefect.yaml's deployments as `prefect deploy` reads them, before any templating."""
    raw = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    model = PrefectYamlModel.model_validate(raw)
    return [d.model_dump(exclude_unset=True, mode="json") for d in model.deployments]


def render_like_prefect_deploy(config: dict[str, Any]) -> dict[str, Any]:
    """Apply the templating `prefect deploy` applies to a deployment with no build or push steps."""
    # prefect/cli/deploy/_core.py:105 — environment placeholders; unset ones are kept for now.
    templated = apply_values(config, dict(os.environ), remove_notset=False)
    assert isinstance(templated, dict)
    # prefect/cli/deploy/_schedules.py:34 — schedules against the (empty) step outputs; a placeholder
    # still unresolved here becomes "".
    templated["schedules"] = apply_values(templated.get("schedules", []), {})
    return templated


def yaml_surface(configs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        c["name"]: {
            "entrypoint": c["entrypoint"],
            "schedules": [{"cron": s["cron"], "timezone": s.get("timezone")} for s in c.get("schedules", [])],
            "parameters": c.get("parameters", {}),
            "tags": c.get("tags", []),
            "description": c.get("description"),
            "work_pool": (c.get("work_pool") or {}).get("name"),
        }
        for c in configs
    }


def code_surface(settings: Settings) -> dict[str, Any]:
    surface: dict[str, Any] = {}
    for d in deployments(settings):
        schedules = []
        for s in d.schedules or []:
            assert isinstance(s.schedule, CronSchedule), f"{d.name}: not a cron schedule: {s.schedule!r}"
            assert s.active, f"{d.name}: a schedule is built inactive"
            schedules.append({"cron": s.schedule.cron, "timezone": s.schedule.timezone})
        surface[d.name] = {
            "entrypoint": d.entrypoint,
            "schedules": schedules,
            "parameters": d.parameters,
            "tags": d.tags,
            "description": d.description,
            "work_pool": d.work_pool_name,
        }
    return surface


def without_work_pool(surface: dict[str, Any]) -> dict[str, Any]:
    """Served deployments have no work pool; everything else must match prefect.yaml."""
    return {name: {k: v for k, v in d.items() if k != "work_pool"} for name, d in surface.items()}


def test_deployment_surface_matches_the_golden_file() -> None:
    # given: the committed prefect.yaml and the deployments `loyalty serve` builds with default settings
    surface = {
        "prefect.yaml": yaml_surface(yaml_deployments()),
        "serve (default settings)": code_surface(settings()),
    }
    # when: asked to, rewrite the golden file (review it as a diff)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(surface, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    # then
    assert surface == json.loads(GOLDEN.read_text(encoding="utf-8")), (
        "The deployment surface changed. If intended, rerun with UPDATE_GOLDEN=1 and review the diff of "
        f"{GOLDEN.relative_to(REPO_ROOT)}."
    )


@pytest.mark.parametrize("timezone", ["Europe/Moscow", "Europe/Warsaw", "America/New_York"])
def test_yaml_and_code_deploy_the_same_schedule_in_the_shops_timezone(
    monkeypatch: pytest.MonkeyPatch, timezone: str
) -> None:
    # given: a shop in this time zone
    monkeypatch.setenv(TZ_ENV, timezone)
    # when: prefect.yaml is templated as `prefect deploy` does, and serve builds its deployments
    from_yaml = yaml_surface([render_like_prefect_deploy(c) for c in yaml_deployments()])
    from_code = code_surface(settings())
    # then: both run daily-run at 06:00 in that zone, with the same entrypoint, parameters and tags
    assert without_work_pool(from_yaml) == without_work_pool(from_code)
    assert from_code["daily-run"]["schedules"] == [{"cron": "0 6 * * *", "timezone": timezone}]
    for schedule in from_yaml["daily-run"]["schedules"]:
        CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # what the server will accept


def test_every_code_deployment_is_declared_in_prefect_yaml() -> None:
    assert set(yaml_surface(yaml_deployments())) == set(code_surface(settings()))
    assert all(d["work_pool"] for d in yaml_surface(yaml_deployments()).values()), "a YAML deployment has no pool"


def test_yaml_timezone_is_blank_when_the_variable_is_unset() -> None:
    """Prefect's hazard, pinned: no default for an unset variable, and a blank time zone means UTC."""
    # given: LOYALTY_SHOP_TIMEZONE unset (the fixture removes it)
    # when
    rendered = [render_like_prefect_deploy(c) for c in yaml_deployments()]
    # then: prefect.yaml's comment tells operators to export it before `prefect deploy`
    zones = [s["timezone"] for c in rendered for s in c["schedules"]]
    assert len(zones) == 5 and set(zones) == {""}  # the five scheduled deployments: all UTC
    assert "export LOYALTY_SHOP_TIMEZONE" in PREFECT_YAML.read_text(encoding="utf-8")


def test_an_unknown_shop_timezone_fails_when_building_deployments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TZ_ENV, "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="Invalid timezone"):
        deployments(settings())


def test_daily_run_parameters_render_as_a_form() -> None:
    # given: the parameter schema served deployments send to the API (the UI builds its form from it)
    (daily,) = [d for d in deployments(settings()) if d.name == "daily-run"]
    schema = daily._parameter_openapi_schema.model_dump()
    props = schema["properties"]
    # then: exactly the flow's three parameters, typed, each described from the docstring's Args
    assert list(props) == ["as_of", "dry_run", "data"]
    assert {"type": "string", "format": "date"} in props["as_of"]["anyOf"]
    assert props["dry_run"]["type"] == "boolean"
    assert {"type": "string"} in props["data"]["anyOf"]
    for name, prop in props.items():
        assert prop.get("description"), f"{name} has no description: check the flow docstring's Args"
    assert schema["required"] == []
    # and: dry_run defaults to false in the deployment, so a scheduled run sends
    assert daily.parameters == {"dry_run": False}


def test_no_deployment_form_offers_a_simulated_clock() -> None:
    # given: every deployment, as `loyalty serve` builds it and as `prefect deploy` reads prefect.yaml's entrypoints
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    served = {d.name: d._parameter_openapi_schema.model_dump()["properties"] for d in deployments(settings())}
    deployed = {
        c["name"]: parameter_schema(load_flow_from_entrypoint(c["entrypoint"]).fn).model_dump()["properties"]
        for c in yaml_deployments()
    }
    # then: none has `now`, which would turn a real run into a simulated one (waves that stop waiting)
    assert served and deployed
    assert {n: "now" in p for n, p in served.items()} == {n: False for n in served}
    assert {n: "now" in p for n, p in deployed.items()} == {n: False for n in deployed}
    # and: the replay parameters are on the forms of the flows that replay
    assert {"campaigns", "channels"} <= set(served["backfill"])
    assert {"from_", "to"} <= set(served["order-updates"])


def test_backfill_is_started_by_hand_with_its_dates() -> None:
    (backfill,) = [d for d in deployments(settings()) if d.name == "backfill"]
    schema = backfill._parameter_openapi_schema.model_dump()
    # no schedule: an engineer runs it from the UI, which asks for the two dates
    assert not backfill.schedules
    assert schema["required"] == ["start", "end"]
    assert schema["properties"]["start"] == {**schema["properties"]["start"], "type": "string", "format": "date"}


def test_an_adhoc_campaign_is_a_form_a_marketer_fills_in() -> None:
    (adhoc,) = [d for d in deployments(settings()) if d.name == "adhoc-campaign"]
    schema = adhoc._parameter_openapi_schema.model_dump()
    # no schedule: the marketer starts it by hand with one request, which the UI renders as a form
    assert not adhoc.schedules
    assert schema["required"] == ["request"]
    request = schema["definitions"]["AdhocRequest"]
    assert {"name", "segment", "audience", "template", "email_copy", "channels", "offer", "send_at", "dry_run"} <= set(
        request["properties"]
    )
    assert request["required"] == ["name"]  # a segment or a condition; a template or the email's copy
    # the catalog's templates and segments are choices (a select in the form); "" leaves the other field to say
    assert {"", "win_back", "weekly_sale"} <= set(request["properties"]["template"]["enum"])
    assert {"", "never_bought", "vip"} <= set(request["properties"]["segment"]["enum"])
    for name, prop in request["properties"].items():
        assert prop.get("description"), f"{name} has no description in the form"
