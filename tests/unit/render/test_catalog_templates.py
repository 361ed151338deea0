"""Every campaign's templates: golden renderings per campaign x locale x channel x step, and the catalog check.

Rewrite the golden files with ``UPDATE_GOLDEN=1 make unit`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.kernel.enums import Channel
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.plan.campaigns import load_catalog
from tasks.render.catalog_check import LOCALES, check_catalog, render_sample, sample_messages
from tasks.render.templating import make_environment

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
CATALOG = load_catalog(PROJECT_ROOT / "campaigns", include_disabled=True)
CASES = [(name, locale, channel) for name, c in sorted(CATALOG.items()) for locale in LOCALES for channel in c.channels]


def _settings() -> Settings:
    return Settings(shop_name="Loyalty Flows Demo Shop", shop_url="https://shop.example.com", sms_max_parts=3)


@pytest.mark.parametrize(("campaign", "locale", "channel"), CASES)
def test_every_campaign_renders_as_its_golden_files(campaign: str, locale: str, channel: Channel) -> None:
    env = make_environment(PROJECT_ROOT / "templates")
    for sample in sample_messages(CATALOG[campaign], locale, channel):
        folder = GOLDEN / campaign / locale / sample.label
        for part, text in render_sample(env, CATALOG[campaign], sample, _settings()).items():
            file = folder / part
            if os.environ.get("UPDATE_GOLDEN") == "1":
                folder.mkdir(parents=True, exist_ok=True)
                file.write_text(text, encoding="utf-8")
            assert file.exists(), f"{file} missing: run UPDATE_GOLDEN=1 make unit and review it"
            assert file.read_text(encoding="utf-8") == text, f"{file} differs from the rendering"


def test_no_golden_file_is_left_over_from_a_removed_campaign_or_step() -> None:
    expected = {
        GOLDEN / name / locale / sample.label
        for name, locale, channel in CASES
        for sample in sample_messages(CATALOG[name], locale, channel)
    }
    found = {p.parent for p in GOLDEN.glob("*/*/*/*.*")}
    assert found <= expected, sorted(str(p) for p in found - expected)


def test_the_repository_catalog_passes_its_own_check() -> None:
    passed, problems = check_catalog(PROJECT_ROOT / "campaigns", PROJECT_ROOT / "templates", _settings())

    assert [str(p) for p in problems] == []
    assert sorted(passed) == sorted(CATALOG)


def test_every_campaign_speaks_russian_polish_and_english_with_a_greeting_by_name() -> None:
    env = make_environment(PROJECT_ROOT / "templates")
    for name, campaign in CATALOG.items():
        for locale in LOCALES:
            sample = sample_messages(campaign, locale, Channel.EMAIL)[0]
            rendered = render_sample(env, campaign, sample, _settings())
            assert "Anna" in rendered["body.txt"], f"{name}/{locale} does not greet by name"
            unnamed = type(sample)(sample.label, sample.row | {"first_name": None}, sample.products)
            fallback = render_sample(env, campaign, unnamed, _settings())
            assert "None" not in fallback["body.txt"] and " ," not in fallback["body.txt"], f"{name}/{locale}"
