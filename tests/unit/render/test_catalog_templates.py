"""Every campaign's templates: golden renderings per campaign x locale x channel x step, and the catalog check.

Rewrite the golden files with ``UPDATE_GOLDEN=1 make unit`` and review the diff.
"""

from __future__ import annotations

import os
import re
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
    addressed = {"en": "Anna", "ru": "Anna", "pl": "Anno"}  # Polish addresses a person in the vocative
    for name, campaign in CATALOG.items():
        for locale in LOCALES:
            sample = sample_messages(campaign, locale, Channel.EMAIL)[0]
            rendered = render_sample(env, campaign, sample, _settings())
            assert addressed[locale] in rendered["body.txt"], f"{name}/{locale} does not greet by name"
            unnamed = type(sample)(sample.label, sample.row | {"first_name": None}, sample.products)
            fallback = render_sample(env, campaign, unnamed, _settings())
            assert "None" not in fallback["body.txt"] and " ," not in fallback["body.txt"], f"{name}/{locale}"


def test_every_polish_message_says_anno_never_anna_and_greets_a_name_it_cannot_decline_without_it() -> None:
    env = make_environment(PROJECT_ROOT / "templates")
    for name, campaign in CATALOG.items():
        for sample in sample_messages(campaign, "pl", Channel.EMAIL):
            rendered = render_sample(env, campaign, sample, _settings())
            assert "Anna" not in rendered["subject.txt"] + rendered["body.txt"], f"{name}/{sample.label}"
            unknown = type(sample)(sample.label, sample.row | {"first_name": "Xenofonta"}, sample.products)
            fallback = render_sample(env, campaign, unknown, _settings())
            assert "Xenofont" not in fallback["subject.txt"] + fallback["body.html"], f"{name}/{sample.label}"
            assert fallback["body.txt"].startswith("Dzień dobry!"), f"{name}/{sample.label}"
            assert not fallback["subject.txt"][:1].islower(), f"{name}/{sample.label}"


# words only a pet owner's message uses ("treats", "przysmaki", "лакомство" are for people too)
PET_WORDS = {
    "en": r"\b(pets?|cats?|dogs?|kittens?|pupp(y|ies)|paws?|litter|scratching post)\b",
    "ru": r"питом|кошк|кошач|\bкот(а|у|ом|ик\w*)?\b|собак|пушист|четвероног|поводок|лежанк|когтеточ|наполнител",
    "pl": r"\b(pupil\w*|zwierz\w*|kot(a|u|em|y|ek|ka)?|pies|psa|psu|psem|smycz\w*|drapak\w*|legowisk\w*|żwir\w*|gryzak\w*)\b",
}


@pytest.mark.parametrize(("campaign", "locale", "channel"), CASES)
def test_a_customer_without_a_pet_reads_no_word_about_pets(campaign: str, locale: str, channel: Channel) -> None:
    env = make_environment(PROJECT_ROOT / "templates")
    for sample in sample_messages(CATALOG[campaign], locale, channel):
        gardener = type(sample)(sample.label, sample.row | {"top_category": "garden"}, ())  # no pet, no products
        for part, text in render_sample(env, CATALOG[campaign], gardener, _settings()).items():
            words = re.sub(r"https?://\S+", "", text)  # links name products by id (P-LITTER)
            found = re.search(PET_WORDS[locale], words, flags=re.IGNORECASE)
            assert found is None, f"{campaign}/{locale}/{sample.label}/{part}: {found}"
