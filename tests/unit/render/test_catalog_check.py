"""``loyalty campaigns check``: every error names the file, the field and the reason; good files still pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.render.catalog_check import check_catalog

TEMPLATES = PROJECT_ROOT / "templates"


def _catalog(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    for name in names:
        shutil.copy(PROJECT_ROOT / "campaigns" / f"{name}.yaml", folder / f"{name}.yaml")
    return folder


def _templates(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "templates"
    for name in ("_layout", "_blocks", *names):
        shutil.copytree(TEMPLATES / name, folder / name)
    return folder


def test_a_bad_field_a_bad_audience_and_a_missing_template_are_each_named(tmp_path: Path) -> None:
    campaigns = _catalog(tmp_path, "win_back", "welcome", "thank_you")
    (campaigns / "welcome.yaml").write_text(
        (campaigns / "welcome.yaml").read_text().replace("priority: 50", "priority: 500"), encoding="utf-8"
    )
    (campaigns / "thank_you.yaml").write_text(
        (campaigns / "thank_you.yaml").read_text().replace("days_since_unhappy <= 30", "days_since_unhapy <= 30"),
        encoding="utf-8",
    )
    (campaigns / "birthday.yaml").write_text(
        (PROJECT_ROOT / "campaigns" / "birthday.yaml").read_text().replace("template: birthday", "template: bday"),
        encoding="utf-8",
    )

    passed, problems = check_catalog(campaigns, _templates(tmp_path, "win_back", "thank_you"), Settings())

    assert passed == ["win_back"]
    found = {(Path(p.file).name, p.field) for p in problems}
    assert ("welcome.yaml", "priority") in found
    assert ("thank_you.yaml", "audience") in found
    assert ("birthday.yaml", "template") in found
    audience = next(p for p in problems if p.field == "audience")
    assert "days_since_unhapy" in audience.reason and "days_since_unhappy" in audience.reason  # the closest column
    missing = [p.reason for p in problems if p.field == "template"]
    assert "bday/ru/sms.txt.j2 not found" in missing


def test_an_sms_template_over_its_part_limit_fails_the_check(tmp_path: Path) -> None:
    campaigns = _catalog(tmp_path, "birthday")
    templates = _templates(tmp_path, "birthday")
    long_text = "Поздравляем с днём рождения! " * 8 + "{{ unsubscribe_url }}"
    (templates / "birthday" / "ru" / "sms.txt.j2").write_text(long_text, encoding="utf-8")

    passed, problems = check_catalog(campaigns, templates, Settings(sms_max_parts=3))

    assert passed == []
    assert {p.field for p in problems} == {f"template birthday/ru (step{n}, sms)" for n in (1, 2, 3, 4)}
    assert all("parts" in p.reason and "LOYALTY_SMS_MAX_PARTS=3" in p.reason for p in problems)


def test_a_broken_segment_in_segments_yaml_is_a_problem_of_the_catalog(tmp_path: Path) -> None:
    campaigns = _catalog(tmp_path, "win_back")
    text = (PROJECT_ROOT / "campaigns" / "segments.yaml").read_text(encoding="utf-8")
    (campaigns / "segments.yaml").write_text(text.replace('lifecycle == "new"', 'lifecycle = "new"'), encoding="utf-8")

    _, problems = check_catalog(campaigns, _templates(tmp_path, "win_back"), Settings())

    assert [(Path(p.file).name, p.field) for p in problems] == [("segments.yaml", "segments.new")]
    assert "==" in problems[0].reason  # the hint: to compare, write ==


def test_a_template_using_a_variable_that_does_not_exist_fails_naming_it(tmp_path: Path) -> None:
    campaigns = _catalog(tmp_path, "win_back")
    templates = _templates(tmp_path, "win_back")
    subject = templates / "win_back" / "pl" / "subject.txt.j2"
    subject.write_text("{{ frist_name }}, wracaj", encoding="utf-8")

    _, problems = check_catalog(campaigns, templates, Settings())

    assert problems and all("win_back/pl" in p.field for p in problems)
    assert "frist_name" in problems[0].reason


def test_campaigns_check_exits_1_and_prints_each_problem(tmp_path: Path) -> None:
    campaigns = _catalog(tmp_path, "win_back")
    (campaigns / "broken.yaml").write_text("name: broken\nkind: marketing\n", encoding="utf-8")

    result = CliRunner().invoke(
        app, ["campaigns", "check", "--campaigns", str(campaigns), "--templates", str(TEMPLATES), "--json"]
    )

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["passed"] == ["win_back"]
    assert [Path(p["file"]).name for p in report["problems"]] == ["broken.yaml"]
