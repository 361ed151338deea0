"""Copy a marketer writes: Markdown rendered into the layout, sanitised; variables as text; variants stable and fair."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from tasks.kernel.settings import PROJECT_ROOT
from tasks.render.markdown_copy import (
    EmailCopy,
    LocaleCopy,
    SubjectVariant,
    choose_variant,
    markdown_html,
    plain_text,
    render_copy,
    sanitise,
)
from tasks.render.templating import MessageContext, make_environment

LAYOUT = make_environment(PROJECT_ROOT / "templates")
UNSUBSCRIBE = "https://shop.example.com/u?t=signed"


def _context(locale: str = "pl", first_name: str | None = "Anna", **extra: object) -> MessageContext:
    return MessageContext(
        first_name=first_name,
        greeting_name=first_name,
        locale=locale,
        shop_name="Kot & Pies",
        shop_url="https://shop.example.com",
        unsubscribe_url=UNSUBSCRIBE,
        **extra,  # type: ignore[arg-type]
    )


def _copy(body: str, subject: str = "Wiosna w sklepie", **changes: object) -> EmailCopy:
    return EmailCopy.model_validate({"pl": {"subject": subject, "body": body}} | changes)


def _html(body: str, context: MessageContext | None = None) -> str:
    return render_copy(LAYOUT, _copy(body), "pl", "", context or _context()).html


def _content(html: str) -> str:
    """The message's own part: between the header and the footer of the layout."""
    return html.split('class="content"', 1)[1].split('class="footer"', 1)[0]


# --- the sanitiser ------------------------------------------------------------------------------------------------

ATTACKS = [
    "Hej <script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    "[x](  javascript:alert(1) )",
    "[[x](https://ok.example.com)](javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    '<img src="x" onerror="alert(1)">',
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<iframe src="https://evil.example.com"></iframe>',
    "<style>body{display:none}</style>",
    '<p onclick="alert(1)">x</p>',
    '<svg><a xlink:href="javascript:alert(1)">x</a></svg>',
]


@pytest.mark.parametrize("body", ATTACKS)
def test_nothing_that_runs_survives_rendering(body: str) -> None:
    # Markdown and the sanitiser alone: what a value or a slip past the request check meets
    _assert_inert(markdown_html(body))


@pytest.mark.parametrize("html", [*ATTACKS, '<a href="https://ok.example.com" onmouseover="alert(1)">ok</a>'])
def test_the_sanitiser_drops_what_runs_from_raw_html(html: str) -> None:
    _assert_inert(sanitise(html))


def _assert_inert(html: str) -> None:
    tags = re.findall(r"<[^>]+>", html.lower())  # the real tags; raw HTML in Markdown is &lt;escaped&gt; text
    assert not [t for t in tags if re.match(r"</?(script|style|iframe|svg|object|embed)\b", t)]
    assert not [t for t in tags if re.search(r"\son[a-z]+=", t)]
    urls = [u for t in tags for u in re.findall(r"\s(?:href|src)=\"([^\"]*)\"", t)]
    assert all(u.startswith(("https://", "http://", "mailto:")) for u in urls)


@pytest.mark.parametrize("body", [b for b in ATTACKS if "ok.example.com" not in b or "javascript" in b])
def test_a_body_with_a_script_a_javascript_or_data_link_or_a_handler_is_refused_at_request_time(body: str) -> None:
    with pytest.raises(ValidationError, match="is not allowed in an email"):
        _copy(body)


def test_a_refused_link_keeps_its_words_without_the_link() -> None:
    assert markdown_html("[Kup teraz](javascript:alert(1))") == '<p><a rel="noopener noreferrer">Kup teraz</a></p>\n'


def test_http_https_and_mailto_links_survive_and_images_need_an_http_source() -> None:
    content = _content(
        _html(
            "[Sklep](https://shop.example.com/sale) [blog](http://blog.example.com) [pisz](mailto:hej@example.com)\n\n"
            "![Kot](https://cdn.example.com/kot.png) ![lokalny](kot.png)"
        )
    )

    assert 'href="https://shop.example.com/sale"' in content
    assert 'href="http://blog.example.com"' in content
    assert 'href="mailto:hej@example.com"' in content
    assert 'src="https://cdn.example.com/kot.png"' in content
    assert 'src="kot.png"' not in content


def test_markdown_becomes_html_and_raw_html_is_shown_as_text() -> None:
    content = _content(_html("## Nowości\n\n**Tylko dziś** *dla Ciebie*:\n\n- karma\n- żwirek\n\nA <b>tu</b>."))

    assert "<h2" in content and "Nowości</h2>" in content
    assert "Tylko dziś</strong>" in content and "dla Ciebie</em>" in content
    assert content.count("<li") == 2
    assert "&lt;b&gt;tu&lt;/b&gt;" in content


def test_a_first_name_with_markdown_or_html_is_text() -> None:
    name = "**Anna** <b>x</b>"
    copy = _copy("Cześć, {{ greeting_name }}!", subject="{{ greeting_name }}, wiosna!")

    message = render_copy(LAYOUT, copy, "pl", "", _context(first_name=name))

    content = _content(message.html)
    assert "Cześć, **Anna** &lt;b&gt;x&lt;/b&gt;!" in content
    assert "<strong" not in content and "<b>" not in content
    assert message.subject == "**Anna** <b>x</b>, wiosna!"  # a subject is plain text
    assert message.text.startswith("Cześć, **Anna** <b>x</b>!")


def test_the_email_has_the_shop_s_layout_footer_and_unsubscribe_link() -> None:
    message = render_copy(LAYOUT, _copy("Hej!"), "pl", "", _context())

    assert "Kot &amp; Pies</a>" in message.html  # the header
    assert "wyrażono zgodę na kontakt od Kot &amp; Pies" in message.html
    assert f'href="{UNSUBSCRIBE}"' in message.html and "Wypisz się z ofert</a>" in message.html
    assert message.text.endswith(f"Wypisz się z ofert: {UNSUBSCRIBE}\n")


def test_both_parts_link_the_preferences_page_in_the_customer_s_language() -> None:
    settings_url = "https://shop.example.com/preferences?c=C1&t=signed"
    message = render_copy(LAYOUT, _copy("Hej!"), "pl", "", _context(preferences_url=settings_url))

    assert (
        f'href="{settings_url.replace("&", "&amp;")}"' in message.html and "Ustawienia wiadomości</a>" in message.html
    )
    assert message.text.endswith(f"Wypisz się z ofert: {UNSUBSCRIBE}\nUstawienia wiadomości: {settings_url}\n")


def test_the_text_part_reads_as_plain_text() -> None:
    text = plain_text("## Wiosna\n\n**Anno**, zajrzyj do [sklepu](https://shop.example.com/sale) — *tylko dziś*.")

    assert text == "Wiosna\n\nAnno, zajrzyj do sklepu (https://shop.example.com/sale) — tylko dziś."


def test_a_link_with_a_variable_url_works() -> None:
    content = _content(_html("[Do sklepu]({{ shop_url }}/wiosna?utm=mail)"))

    assert 'href="https://shop.example.com/wiosna?utm=mail"' in content


# --- the request's copy -------------------------------------------------------------------------------------------


def test_an_unknown_variable_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="pl body: unknown variable 'frist_name'"):
        _copy("Cześć, {{ frist_name }}!")
    with pytest.raises(ValidationError, match="pl subject: unknown variable 'order_id'"):
        _copy("Hej", subject="Zamówienie {{ order_id }}")


def test_a_copy_needs_a_language_a_one_line_short_subject_and_a_body_within_bounds() -> None:
    with pytest.raises(ValidationError, match="at least one language"):
        EmailCopy()
    with pytest.raises(ValidationError, match="one line"):
        _copy("Hej", subject="Wiosna\nw sklepie")
    with pytest.raises(ValidationError, match="at most 150"):
        _copy("Hej", subject="x" * 151)
    with pytest.raises(ValidationError, match="at most 20000"):
        _copy("x" * 20_001)


def test_subject_variants_need_two_to_four_shares_summing_to_one_and_a_subject_per_language() -> None:
    a, b = {"share": 0.5, "pl": "Wiosna -20%"}, {"share": 0.5, "pl": "{{ greeting_name }}, wiosna!"}
    assert len(_copy("Hej", subject_variants=[a, b]).subject_variants) == 2
    with pytest.raises(ValidationError, match="2 to 4"):
        _copy("Hej", subject_variants=[{"share": 0.9999999999, "pl": "x"}])
    with pytest.raises(ValidationError, match=r"sum to 0\.9, not 1"):
        _copy("Hej", subject_variants=[a, {"share": 0.4, "pl": "y"}])
    with pytest.raises(ValidationError, match="subject variant B: no pl subject"):
        _copy("Hej", subject_variants=[a, {"share": 0.5, "ru": "Весна"}])


def test_the_variant_is_the_same_on_a_rerun_and_close_to_its_share() -> None:
    shares = [0.2, 0.3, 0.5]
    picks = [choose_variant(shares, "adhoc_spring", "2024-06-01", f"C{i:05d}") for i in range(10_000)]

    assert picks == [choose_variant(shares, "adhoc_spring", "2024-06-01", f"C{i:05d}") for i in range(10_000)]
    for name, share in zip("ABC", shares, strict=True):
        assert abs(picks.count(name) / len(picks) - share) < 0.02
    assert choose_variant([], "adhoc_spring", "2024-06-01", "C1") == ""


def test_each_variant_gets_its_own_subject_in_each_language() -> None:
    copy = EmailCopy(
        ru=LocaleCopy(subject="Весна", body="Привет!"),
        pl=LocaleCopy(subject="Wiosna", body="Cześć!"),
        subject_variants=(
            SubjectVariant(share=0.5, ru="Весенняя распродажа", pl="Wiosenna wyprzedaż"),
            SubjectVariant(share=0.5, ru="{{ greeting_name }}, скидки", pl="{{ greeting_name }}, rabaty"),
        ),
    )

    assert render_copy(LAYOUT, copy, "ru", "A", _context("ru", "Мария")).subject == "Весенняя распродажа"
    assert render_copy(LAYOUT, copy, "pl", "B", _context("pl", "Zosiu")).subject == "Zosiu, rabaty"


def test_a_missing_language_falls_back_to_english_then_the_first_written_or_is_skipped() -> None:
    both = EmailCopy(ru=LocaleCopy(subject="Весна", body="Привет"), en=LocaleCopy(subject="Spring", body="Hi"))
    polish_only = EmailCopy(pl=LocaleCopy(subject="Wiosna", body="Cześć"))
    skip = both.model_copy(update={"missing_locale": "skip"})

    assert both.locale_for("ru") == "ru"
    assert both.locale_for("pl") == "en"
    assert polish_only.locale_for("ru") == "pl"
    assert skip.locale_for("pl") is None and skip.locale_for("ru") == "ru"


def test_the_readme_s_copy_file_is_valid_and_reads_well_without_a_name() -> None:
    import yaml

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    source = readme.split("`spring.yaml`:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    copy = EmailCopy.model_validate(yaml.safe_load(source))
    extra = {"coupon_code": "SPRING-AB12", "percent_off": 15, "coupon_valid_until": "8 июня"}

    message = render_copy(LAYOUT, copy, "ru", "", _context("ru", None, **extra))

    assert message.subject == "Весна пришла"
    assert message.text.startswith("Здравствуйте!\n\nТолько до 8 июня — скидка 15% по промокоду SPRING-AB12.")
    assert [v.share for v in copy.subject_variants] == [0.5, 0.5]
