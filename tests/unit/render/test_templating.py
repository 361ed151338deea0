"""Templates: escaping, strictness, locale fallback, and golden renderings per campaign and locale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.kernel.settings import PROJECT_ROOT
from tasks.render.templating import MessageContext, ProductPick, RenderError, make_environment, render_message

TEMPLATES = PROJECT_ROOT / "templates"
GOLDEN = Path(__file__).resolve().parents[2] / "golden"

CONTEXT = MessageContext(
    first_name="Anna",
    locale="en",
    shop_name="Loyalty Flows Demo Shop",
    shop_url="https://shop.example.com",
    unsubscribe_url="https://shop.example.com/unsubscribe?c=C1&ch=email&t=abc",
    days_since_last_order=121,
    coupon_code="BACK-ABCDEFGH",
    percent_off=15,
    coupon_valid_until="June 15, 2024",
)


def test_script_in_a_name_is_escaped_in_html_but_kept_in_text() -> None:
    env = make_environment(TEMPLATES)
    context = CONTEXT.model_copy(update={"first_name": "<script>alert(1)</script>"})

    message = render_message(env, "win_back", context)

    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
    assert "<script>alert(1)</script>" in message.text  # plain text is not HTML


def test_undefined_variable_fails_with_the_template_name(tmp_path: Path) -> None:
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    body = tmp_path / "templates" / "win_back" / "pl" / "body.txt.j2"
    body.write_text(body.read_text(encoding="utf-8") + "\n{{ loyalty_points }}\n", encoding="utf-8")
    env = make_environment(tmp_path / "templates")

    with pytest.raises(RenderError) as err:
        render_message(env, "win_back", CONTEXT.model_copy(update={"locale": "pl"}))

    assert str(err.value) == "template win_back/pl/body.txt.j2: 'loyalty_points' is undefined"


def test_templates_cannot_reach_python_internals(tmp_path: Path) -> None:
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    subject = tmp_path / "templates" / "win_back" / "en" / "subject.txt.j2"
    subject.write_text("{{ shop_name.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8")

    with pytest.raises(RenderError, match=r"win_back/en/subject\.txt\.j2"):
        render_message(make_environment(tmp_path / "templates"), "win_back", CONTEXT)


def test_unknown_locale_falls_back_to_english() -> None:
    message = render_message(make_environment(TEMPLATES), "win_back", CONTEXT.model_copy(update={"locale": "de"}))

    assert message.subject == "Anna, we miss you: 15% off, just for you"


def test_missing_first_name_gives_a_graceful_greeting() -> None:
    message = render_message(
        make_environment(TEMPLATES), "win_back", CONTEXT.model_copy(update={"first_name": None, "locale": "ru"})
    )

    assert message.subject.startswith("Мы скучаем")
    assert message.text.startswith("Здравствуйте!")
    assert "None" not in message.html


PICKS = (
    ProductPick(
        name="Purrfect Salmon Dry Food 2 kg",
        url="https://shop.example.com/p/1",
        price="€12.50",
        reason="because_of",
        because="Catnap Tuna Pâté 400 g",
    ),
    ProductPick(
        name="Meowdy Kitten Food 1.5 kg", price="€9.90", reason="due_again", because="Meowdy Kitten Food 1.5 kg"
    ),
    ProductPick(name="Feather Wand Toy", url="https://shop.example.com/p/3", reason="popular"),
)


@pytest.mark.parametrize("locale", ["en", "ru", "pl"])
def test_picked_products_show_with_their_reason_and_no_block_without_them(locale: str) -> None:
    env = make_environment(TEMPLATES)
    with_picks = render_message(env, "win_back", CONTEXT.model_copy(update={"locale": locale, "products": PICKS}))
    without = render_message(env, "win_back", CONTEXT.model_copy(update={"locale": locale}))

    for message in (with_picks.text, with_picks.html):
        assert "Purrfect Salmon Dry Food 2 kg" in message and "Catnap Tuna" in message  # the pick and its reason
        assert "Feather Wand Toy" in message
    assert "€12.50" in with_picks.text
    assert "Purrfect" not in without.text and "Purrfect" not in without.html
    assert "\n\n\n" not in without.text and "\n\n\n" not in with_picks.text  # no empty block left behind


@pytest.mark.parametrize("link", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "vbscript:x"])
def test_a_product_link_that_is_not_http_is_never_a_live_link(link: str) -> None:
    pick = ProductPick(name="Feather Wand Toy", url=link, image_url=link, reason="popular")

    message = render_message(make_environment(TEMPLATES), "win_back", CONTEXT.model_copy(update={"products": (pick,)}))

    assert "Feather Wand Toy" in message.html and "Feather Wand Toy" in message.text
    assert link.strip() not in message.html and link.strip() not in message.text


@pytest.mark.parametrize(("locale", "expected"), [("ru", "4 декабря"), ("pl", "4 grudnia"), ("en", "December 4")])
def test_coupon_date_is_written_in_the_customers_language(locale: str, expected: str) -> None:
    from datetime import date

    from tasks.consent.tokens import MessageKeys
    from tasks.kernel.settings import Settings
    from tasks.plan.campaigns import load_catalog
    from tasks.render.compose import build_context

    campaign = load_catalog(PROJECT_ROOT / "campaigns")["win_back"]
    row = {
        "first_name": "Anna",
        "customer_id": "C1",
        "channel": "email",
        "idempotency_key": "k",
        "days_since_last_order": 120,
    }

    context = build_context(row, campaign, Settings(), MessageKeys.from_secret(b"key"), date(2026, 11, 20), locale)

    assert context.coupon_valid_until == expected
    assert context.coupon_code is not None and context.coupon_code.startswith("BACK-")


def test_a_product_block_without_a_label_for_a_reason_shows_the_product_without_a_reason_line() -> None:
    # an ad-hoc campaign may send the weekly sale's template (labels for new arrivals) with personal picks
    env = make_environment(TEMPLATES)
    context = CONTEXT.model_copy(update={"locale": "ru", "products": PICKS})

    message = render_message(env, "weekly_sale", context)

    assert "Purrfect Salmon Dry Food 2 kg" in message.text and "Purrfect Salmon Dry Food 2 kg" in message.html
    assert "Catnap Tuna" not in message.text  # no label for "because you liked" in this template
