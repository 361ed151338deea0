"""Useful articles: content files by interest and locale, given in turn and never twice; the sale text follows
the campaign's own offer and day."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tasks.consent.tokens import MessageKeys
from tasks.kernel.errors import CatalogError
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.plan.campaigns import Campaign, Offer, load_catalog
from tasks.render.articles import ArticleHistory, ArticleWanted, load_article, load_articles, next_article
from tasks.render.compose import render_shard
from tasks.render.templating import make_environment

CATALOG = load_catalog(PROJECT_ROOT / "campaigns")
TEMPLATES = PROJECT_ROOT / "templates"
KEYS = MessageKeys.from_secret(b"articles-test-key-0123456789")
FRIDAY = date(2026, 3, 6)
POOL = load_articles(TEMPLATES, ["cat", "dog"])


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, shop_name="Kot & Pies", shop_url="https://shop.example.com/")


@pytest.fixture
def history(tmp_path: Path) -> ArticleHistory:
    return ArticleHistory(tmp_path / "state" / "articles.sqlite")


def _row(day: date, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "idempotency_key": f"weekly_sale/1/email/C1/{day.isoformat()}",
        "customer_id": "C1",
        "campaign": "weekly_sale",
        "channel": "email",
        "kind": "marketing",
        "email": "c1@example.com",
        "phone": None,
        "first_name": "Ola",
        "locale": "en",
        "days_since_last_order": 10,
        "top_category": "cat_food",
        "step": 1,
        "occurrence": day.isoformat(),
        "send_day": pd.Timestamp(day),
        "detail": None,
        "send_at": pd.Timestamp(f"{day.isoformat()} 09:00", tz="UTC"),
        "timezone": "Europe/Warsaw",
        "country": "PL",
    }
    return row | changes


def _render(
    rows: list[dict[str, object]],
    settings: Settings,
    history: ArticleHistory | None,
    outbox: Path,
    campaigns: dict[str, Campaign] | None = None,
) -> pd.DataFrame:
    env = make_environment(settings.templates_dir)
    day = date.fromisoformat(str(rows[0]["occurrence"]))
    return render_shard(pd.DataFrame(rows), campaigns or CATALOG, env, settings, KEYS, day, outbox, None, None, history)


def _article_in(text: str, locale: str = "en") -> str | None:
    """The slug of the article a rendered text carries, if any."""
    found = [a.slug for a in POOL if a.locale == locale and a.title in text]
    assert len(found) <= 1, found
    return found[0] if found else None


def _fitting(locale: str, interest: str | None, day: date) -> list[str]:
    return [a.slug for a in POOL if a.fits(locale, interest, day)]


def test_every_locale_has_at_least_six_articles_for_cats_dogs_and_everyone() -> None:
    for locale in ("en", "ru", "pl"):
        interests = [a.interest for a in POOL if a.locale == locale]
        assert len(interests) >= 6, locale
        assert {"cat", "dog", "any"} <= set(interests), locale


def test_a_customer_rendered_on_four_consecutive_fridays_gets_four_different_articles(
    tmp_path: Path, settings: Settings, history: ArticleHistory
) -> None:
    fridays = [FRIDAY + timedelta(weeks=n) for n in range(4)]

    texts = [_render([_row(day)], settings, history, tmp_path / "outbox").iloc[0]["text"] for day in fridays]

    given = [_article_in(str(text)) for text in texts]
    assert None not in given
    assert len(set(given)) == 4, given
    assert given[0] == "cat-food-switch"  # a cat owner's first: a cat article, by date then name
    assert set(history.given("C1")) == set(given)


def test_once_every_fitting_article_was_given_the_message_goes_without_an_article_block(
    tmp_path: Path, settings: Settings, history: ArticleHistory
) -> None:
    pool = _fitting("en", "cat", FRIDAY)
    days = [FRIDAY + timedelta(days=n) for n in range(len(pool) + 1)]

    rendered = [_render([_row(day)], settings, history, tmp_path / "outbox").iloc[0] for day in days]

    assert sorted(_article_in(str(r["text"])) for r in rendered[:-1]) == sorted(pool)  # each once
    last = rendered[-1]
    assert _article_in(str(last["text"])) is None
    assert 'class="article"' not in str(last["html"]) and "useful tip" not in str(last["html"])
    assert str(last["text"]).count("\n\n\n") == 0  # no empty block left behind
    assert len(history.given("C1")) == len(pool)


def test_a_re_render_of_the_same_message_carries_the_same_article(
    tmp_path: Path, settings: Settings, history: ArticleHistory
) -> None:
    first = _render([_row(FRIDAY)], settings, history, tmp_path / "outbox").iloc[0]

    again = _render([_row(FRIDAY)], settings, history, tmp_path / "retry").iloc[0]  # a retry, a re-run of the day
    next_week = _render([_row(FRIDAY + timedelta(weeks=1))], settings, history, tmp_path / "outbox").iloc[0]

    assert again["text"] == first["text"]
    assert _article_in(str(next_week["text"])) not in (None, _article_in(str(first["text"])))
    assert history.given("C1") == {
        _article_in(str(first["text"])): first["idempotency_key"],
        _article_in(str(next_week["text"])): next_week["idempotency_key"],
    }


def test_a_cat_owner_is_never_given_a_dog_only_article_nor_a_dog_owner_a_cat_one(history: ArticleHistory) -> None:
    day = date(2026, 12, 4)  # every article may be used by then
    given: dict[str, list[str]] = {}
    for customer, interest in (("C-CAT", "cat"), ("C-DOG", "dog"), ("C-NONE", None)):
        for week in range(20):
            key = f"weekly_sale/{customer}/{week}"
            chosen = history.give(POOL, [ArticleWanted(key, customer, "pl", interest, day + timedelta(weeks=week))])
            given.setdefault(customer, []).extend(a.slug for a in chosen.values())

    interest_of = {a.slug: a.interest for a in POOL if a.locale == "pl"}
    assert {interest_of[s] for s in given["C-CAT"]} == {"cat", "any"}
    assert {interest_of[s] for s in given["C-DOG"]} == {"dog", "any"}
    assert {interest_of[s] for s in given["C-NONE"]} == {"any"}
    assert all(len(slugs) == len(set(slugs)) for slugs in given.values())  # never twice


def test_an_article_from_a_later_day_is_not_given_before_it() -> None:
    loose_lead = next(a for a in POOL if a.locale == "en" and a.slug == "dog-loose-lead")
    assert loose_lead.from_ is not None
    given_all_but_it = {a.slug: "earlier" for a in POOL if a.locale == "en" and a.slug != "dog-loose-lead"}

    before = next_article(POOL, "en", "dog", loose_lead.from_ - timedelta(days=1), given_all_but_it, "k")
    on_the_day = next_article(POOL, "en", "dog", loose_lead.from_, given_all_but_it, "k")

    assert before is None
    assert on_the_day is not None and on_the_day.slug == "dog-loose-lead"


def test_a_message_whose_template_shows_no_article_uses_none_up(
    tmp_path: Path, settings: Settings, history: ArticleHistory
) -> None:
    birthday = _row(
        FRIDAY, campaign="birthday", idempotency_key="birthday/1/email/C1/2026-03-13", occurrence="2026-03-13"
    )

    _render([birthday], settings, history, tmp_path / "outbox")

    assert history.given("C1") == {}


def test_two_messages_of_one_customer_in_a_shard_carry_different_articles(
    tmp_path: Path, settings: Settings, history: ArticleHistory
) -> None:
    adhoc = CATALOG["weekly_sale"].model_copy(update={"name": "spring_news"})
    rows = [_row(FRIDAY), _row(FRIDAY, campaign="spring_news", idempotency_key="spring_news/1/email/C1/2026-03-06")]

    rendered = _render(rows, settings, history, tmp_path / "outbox", {**CATALOG, "spring_news": adhoc})

    slugs = [_article_in(str(text)) for text in rendered["text"]]
    assert None not in slugs and len(set(slugs)) == 2


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("title: No front matter\n\nBody.\n", "line 1"),
        ("---\ntitle: Never closed\ninterest: cat\nBody.\n", "front matter"),
        ("---\ninterest: cat\n---\nBody.\n", "title"),
        ("---\ntitle: A typo\ninterest: cat\nform: 2026-01-01\n---\nBody.\n", "form"),
        ("---\ntitle: Plural\ninterest: cats\n---\nBody.\n", "interest"),
        ("---\ntitle: A bad date\ninterest: any\nfrom: 01.05.2026\n---\nBody.\n", "from"),
        ("---\ntitle: Nothing to say\ninterest: dog\n---\n\n", "body"),
        ("---\ntitle: Too long\ninterest: dog\n---\n" + "Walk. " * 300 + "\n", "body"),
    ],
)
def test_a_malformed_article_file_is_an_error_naming_the_file_and_the_field(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "_articles" / "en" / "broken-tip.md"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")

    with pytest.raises(CatalogError, match=rf"broken-tip\.md: {where}"):
        load_articles(tmp_path, ["cat", "dog"])


def test_a_file_name_that_is_no_slug_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "_articles" / "en" / "Cat Tips.md"
    path.parent.mkdir(parents=True)
    path.write_text("---\ntitle: Tips\ninterest: cat\n---\nBody.\n", encoding="utf-8")

    with pytest.raises(CatalogError, match=r"Cat Tips\.md: file name"):
        load_article(path, ["cat", "dog"])


def test_a_bad_article_stops_rendering_a_message_that_shows_one(
    tmp_path: Path, settings: Settings, history: ArticleHistory
) -> None:
    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "_articles" / "ru" / "mistake.md").write_text("---\ntitle: x\n---\n", encoding="utf-8")

    with pytest.raises(CatalogError, match=r"_articles/ru/mistake\.md: interest"):
        _render([_row(FRIDAY)], settings.model_copy(update={"templates_dir": templates}), history, tmp_path / "o")


def test_an_article_body_is_plain_text_escaped_in_html(tmp_path: Path, settings: Settings) -> None:
    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    shutil.rmtree(templates / "_articles" / "en")
    (templates / "_articles" / "en").mkdir()
    (templates / "_articles" / "en" / "a-tip.md").write_text(
        "---\ntitle: Bowls & <b>mats</b>\ninterest: any\n---\nFirst line\nof one paragraph.\n\n<script>x()</script>\n",
        encoding="utf-8",
    )
    history = ArticleHistory(tmp_path / "state" / "articles.sqlite")

    rendered = _render(
        [_row(FRIDAY)], settings.model_copy(update={"templates_dir": templates}), history, tmp_path / "o"
    )

    html, text = str(rendered.iloc[0]["html"]), str(rendered.iloc[0]["text"])
    assert "<h3>Bowls &amp; &lt;b&gt;mats&lt;/b&gt;</h3>" in html
    assert "<p>First line of one paragraph.</p>" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert "Bowls & <b>mats</b>\nFirst line of one paragraph.\n\n<script>x()</script>\n\n--" in text


PERCENT = re.compile(r"\d+\s?%")
FRIDAY_WORDS = {"en": "Friday", "ru": "пятниц", "pl": "piąt"}
WEEKDAY = {"en": "It's Tuesday", "ru": "Сегодня вторник", "pl": "Jest wtorek"}


@pytest.mark.parametrize("locale", ["en", "ru", "pl"])
def test_the_sale_text_without_an_offer_claims_no_percentage_no_coupon_and_no_friday_on_a_tuesday(
    tmp_path: Path, settings: Settings, history: ArticleHistory, locale: str
) -> None:
    tuesday = date(2026, 3, 10)
    assert CATALOG["weekly_sale"].offer is None

    rendered = _render([_row(tuesday, locale=locale)], settings, history, tmp_path / "outbox").iloc[0]

    preheader = re.search(r'overflow:hidden;">(.*?)</span>', str(rendered["html"]))
    assert preheader is not None
    words = " ".join([str(rendered["subject"]), str(rendered["text"]), preheader.group(1)])
    assert PERCENT.search(words) is None, words
    assert re.search(r"coupon|промокод|\bkod", words, flags=re.IGNORECASE) is None, words
    assert FRIDAY_WORDS[locale] not in words
    assert WEEKDAY[locale] in str(rendered["text"])  # the day it goes out, in the locale's own word


@pytest.mark.parametrize(
    ("locale", "claim"),
    [
        ("en", "a personal coupon for 15% off your next order: WEEK-"),
        ("ru", "промокод на скидку 15% на следующий заказ: WEEK-"),
        ("pl", "kod na 15% rabatu na kolejne zamówienie: WEEK-"),
    ],
)
def test_the_sale_text_with_an_offer_names_the_campaigns_own_percentage_and_coupon(
    tmp_path: Path, settings: Settings, history: ArticleHistory, locale: str, claim: str
) -> None:
    offer = Offer(coupon_prefix="WEEK", percent_off=15, valid_days=3)
    with_offer = CATALOG["weekly_sale"].model_copy(update={"offer": offer})

    rendered = _render(
        [_row(FRIDAY, locale=locale)], settings, history, tmp_path / "outbox", {"weekly_sale": with_offer}
    ).iloc[0]

    assert claim in str(rendered["text"])
    assert "15%" in str(rendered["subject"])
    assert set(PERCENT.findall(str(rendered["text"]))) == {"15%"}  # no other percentage anywhere
    assert FRIDAY_WORDS[locale] in str(rendered["text"])


def test_the_catalog_check_names_a_bad_article_file_and_the_campaign_it_would_stop(
    tmp_path: Path, settings: Settings
) -> None:
    import shutil

    from tasks.render.catalog_check import check_catalog

    campaigns, templates = tmp_path / "campaigns", tmp_path / "templates"
    campaigns.mkdir()
    shutil.copy(PROJECT_ROOT / "campaigns" / "weekly_sale.yaml", campaigns)
    shutil.copytree(TEMPLATES, templates)
    bad = templates / "_articles" / "pl" / "koty.md"
    bad.write_text("---\ntitle: Koty\ninterest: koty\n---\nKrótko.\n", encoding="utf-8")

    passed, problems = check_catalog(campaigns, templates, settings)

    assert passed == []
    assert [(p.file, p.field) for p in problems if p.file == str(bad)] == [(str(bad), "interest")]
    assert {p.file for p in problems} == {str(bad), str(campaigns / "weekly_sale.yaml")}
