"""CSS inlining once per markup: every message comes out exactly as inlining it whole would write it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.kernel.settings import PROJECT_ROOT
from tasks.render import inlining
from tasks.render.inlining import INLINER
from tasks.render.templating import MessageContext, ProductPick, make_environment, render_message

TEMPLATES = PROJECT_ROOT / "templates"
CONTEXT = MessageContext(
    first_name="Anna",
    locale="en",
    shop_name="Loyalty Flows Demo Shop",
    shop_url="https://shop.example.com",
    unsubscribe_url="https://shop.example.com/unsubscribe?c=C1&ch=email&t=abc",
    coupon_code="BACK-ABCDEFGH",
    percent_off=15,
    coupon_valid_until="June 15, 2024",
)
AWKWARD = [
    'Tom & "Jerry" <b>O\'Neil</b>',
    "  Anna\u00a0Maria \t",
    "Zoë — 😀 &amp; &lt;x&gt; \u202f 1 234,50 ₽",
    "a\x0cb =`{{ x }}` {% y %}",
]


def _inlined_whole(template: str, context: MessageContext) -> str:
    """What inlining the rendered message itself gives (the way every message was inlined before)."""
    env = make_environment(TEMPLATES)
    return str(
        INLINER.inline(env.get_template(f"{template}/{context.locale}/body.html.j2").render(context.model_dump()))
    )


@pytest.mark.parametrize("value", AWKWARD)
@pytest.mark.parametrize("locale", ["en", "ru", "pl"])
def test_names_links_and_prices_with_markup_characters_come_out_as_inlining_the_whole_message(
    value: str, locale: str
) -> None:
    picks = (
        ProductPick(name=value, url=f"https://shop.example.com/p?a=1&b={value}", price=value, reason="popular"),
        ProductPick(name="Feather Wand Toy", reason="because_of", because=value),
    )
    context = CONTEXT.model_copy(
        update={"first_name": value, "locale": locale, "coupon_code": value, "products": picks}
    )
    env = make_environment(TEMPLATES)

    first = render_message(env, "win_back", CONTEXT.model_copy(update={"locale": locale, "products": picks}))
    message = render_message(env, "win_back", context)  # the same markup as the first: its inlining is reused

    assert message.html == _inlined_whole("win_back", context)
    assert first.html == _inlined_whole("win_back", CONTEXT.model_copy(update={"locale": locale, "products": picks}))


def test_a_thousand_messages_of_one_template_inline_their_css_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Counting:
        def inline(self, html: str) -> str:
            calls.append(html)
            return str(INLINER.inline(html))

    monkeypatch.setattr(inlining, "INLINER", Counting())
    monkeypatch.setattr(inlining, "_inlined", {})
    env = make_environment(TEMPLATES)

    messages = [
        render_message(env, "win_back", CONTEXT.model_copy(update={"first_name": f"Anna {i}", "coupon_code": f"C{i}"}))
        for i in range(1000)
    ]

    assert len(calls) == 1
    assert 'class="coupon" style="' in messages[999].html and "C999" in messages[999].html


def _one_template(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "templates" / "note" / "en"
    folder.mkdir(parents=True)
    (folder / "subject.txt.j2").write_text("Hello", encoding="utf-8")
    (folder / "body.txt.j2").write_text("Hello", encoding="utf-8")
    (folder / "body.html.j2").write_text(
        "<html><head><style>.long { color: red; } .step { font-weight: bold; }</style></head><body>"
        + body
        + "</body></html>",
        encoding="utf-8",
    )
    return tmp_path / "templates"


@pytest.mark.parametrize(
    ("body", "first_name", "expected"),
    [
        # a template that measures its own output sees the value, not a slot
        (
            "{% set who %}{{ first_name }}{% endset %}"
            '{% if who|length > 5 %}<p class="long">{{ who }}</p>{% else %}<p>{{ who }}</p>{% endif %}',
            "Bartholomew",
            '<p class="long" style="color: red;">Bartholomew</p>',
        ),
        # a value that is a class decides which rules apply
        (
            '<p class="{{ variant }}">{{ first_name }}</p>',
            "Anna",
            '<p class="step" style="font-weight: bold;">Anna</p>',
        ),
        # a value inside the CSS itself
        (
            '<style>.x { color: {{ first_name }}; }</style><p class="x">y</p>',
            "red } .x { font-weight: bold",
            'style="color: red;font-weight: bold;"',
        ),
    ],
)
def test_a_value_that_changes_the_markup_or_the_styles_still_gets_its_styles(
    tmp_path: Path, body: str, first_name: str, expected: str
) -> None:
    env = make_environment(_one_template(tmp_path, body))
    context = CONTEXT.model_copy(update={"first_name": first_name, "variant": "step"})

    message = render_message(env, "note", context)

    assert expected in message.html
    assert message.html == str(INLINER.inline(env.get_template("note/en/body.html.j2").render(context.model_dump())))
