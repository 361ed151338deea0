"""The product as a marketer meets it: the Prefect UI in headless Chromium, against a local Prefect server.

One journey through the UI a person opens (``/``, which lands on Prefect's V2 UI): the project's deployments,
served by ``serve_all`` in a subprocess against the local AWS (moto), are listed, and daily-run's schedule is
06:00 in the shop's time zone; the ad-hoc campaign's form ("Run" -> "Custom run") is filled and submitted; the
preview artifact shows the audience the plan counted; the paused run is approved from the UI; the messages
arrive at the local SES. A second journey writes the email itself in the form (a Markdown body and an A/B subject
in ru and pl): a script in it has the run refused, the copy without it is previewed, approved and sent.
A screenshot of every step goes to ``LOYALTY_TEST_ARTIFACTS`` (``tests/artifacts/``).

Slow: a Prefect server (~15 s), serve registering five deployments, a flow run (~1.5 min in all).
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from playwright.sync_api import Locator, Page, expect

from tasks.jobs.adhoc import PREFIX, adhoc_paths
from tasks.jobs.adhoc_preview import artifact_key
from tasks.kernel.enums import Decision, Table
from tasks.render.markdown_copy import choose_variant
from tests.conftest import REGION, REPO_ROOT
from tests.prefect_servers import PrefectServer, exited, running_prefect_server, spawn, wait_for
from tests.shops import add_rows, tiny_shop, write_shop

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SERVE = "from flows.serve import serve_all; from tasks.kernel.settings import Settings; serve_all(Settings())"
# Far from UTC and from the browser's zone: 06:00 there is 23:00 UTC the day before.
SHOP_TIMEZONE = "Asia/Novosibirsk"
CAMPAIGN = "spring_comeback"
FLOW_RUN_TIMEOUT = 120.0


def _choose(page: Page, label: str, option: str) -> None:
    """Pick an option of a form's select (an enum of the request's schema): Prefect's own listbox under ``label``."""
    # the field's label is not tied to its select button: the first "Select" after the label's text is its control
    page.locator(f"xpath=//*[normalize-space(text())='{label}']/following::*[normalize-space(.)='Select'][1]").click()
    page.get_by_role("option", name=option, exact=True).click()


def _shop(folder: Path) -> Path:
    """The tiny shop and eight newcomers who never ordered (ru, pl, en; every fourth without email consent)."""
    locales = [
        ("ru", "RU", "Europe/Moscow", "Мария"),
        ("pl", "PL", "Europe/Warsaw", "Zofia"),
        ("en", "GB", "Europe/London", ""),
    ]
    newcomers = []
    for i in range(8):
        locale, country, zone, name = locales[i % 3]
        newcomers.append(
            {
                "customer_id": f"N{i:03d}",
                "email": f"n{i}@example.com",
                "first_name": name,
                "locale": locale,
                "timezone": zone,
                "country": country,
                "created_at": "2024-05-01T00:00:00Z",
                "email_opt_in": "false" if i % 4 == 3 else "true",
                "sms_opt_in": "false",
            }
        )
    return write_shop(add_rows(tiny_shop(), Table.CUSTOMERS, newcomers), folder)


@dataclass
class Served:
    """The Prefect server (its UI at ``ui``) and a check that the serving process is still there."""

    server: PrefectServer
    alive: Callable[[], str | None]

    @property
    def ui(self) -> str:
        return self.server.api_url.removesuffix("/api")


@pytest.fixture
def served(aws: str, tmp_path: Path) -> Iterator[Served]:
    """A Prefect server with its UI and every deployment served against the local AWS, for a shop in Novosibirsk."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    # The UI asks the server it came from ("/api"), whatever port the server got.
    ui_settings = {"PREFECT_UI_API_URL": "/api", "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false"}
    with running_prefect_server(home, **ui_settings) as server:
        env = server.env(
            LOYALTY_SHOP_TIMEZONE=SHOP_TIMEZONE,
            LOYALTY_DATA=str(_shop(tmp_path / "shop")),
            # the test sends whatever the hour: no quiet hours
            LOYALTY_QUIET_HOURS_START="0",
            LOYALTY_QUIET_HOURS_END="0",
        )
        log = tmp_path / "serve.log"
        with spawn([sys.executable, "-c", SERVE], env, log, cwd=REPO_ROOT) as serve:
            alive = exited(serve, log)
            wait_for(
                "serve to poll", lambda: True if "being served" in log.read_text(errors="replace") else None, 120, alive
            )
            yield Served(server, alive)


def _flow_run(served: Served, name: str, done: Callable[[Any], bool]) -> Any:
    """Wait for the flow run called ``name`` to reach a state ``done`` accepts; return it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def probe() -> Any | None:
        with temporary_settings({PREFECT_API_URL: served.server.api_url}), get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
        if runs and runs[0].state is not None and runs[0].state.is_final() and not done(runs[0]):
            pytest.fail(f"flow run {name} ended {runs[0].state.type.value}: {runs[0].state.message}")
        return runs[0] if runs and done(runs[0]) else None

    return wait_for(f"flow run {name}", probe, FLOW_RUN_TIMEOUT, served.alive)


def _deployment_names() -> list[str]:
    from flows.serve import deployments
    from tasks.kernel.settings import Settings

    return [deployment.name for deployment in deployments(Settings())]


def _ses_sent() -> int:
    return int(boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"])


def _ses_sent_at_least(n: int) -> int | None:
    sent = _ses_sent()
    return sent if sent >= n else None


def _planned(output_dir: Path) -> tuple[int, int]:
    """The audience and the messages to send, as the campaign's plan in its run folder counts them."""
    from tasks.kernel.calendar import business_date

    plan = pd.read_parquet(adhoc_paths(output_dir, CAMPAIGN, business_date(SHOP_TIMEZONE)).plan)
    return plan["customer_id"].nunique(), int((plan["decision"] == Decision.SEND.value).sum())


def _sidebar(page: Page, section: str) -> None:
    """Open a section from the sidebar (its link comes first; a page's breadcrumb may repeat the name)."""
    page.get_by_role("link", name=section, exact=True).first.click()


def test_a_marketer_sees_the_schedule_runs_a_campaign_reads_its_preview_approves_it_and_it_is_sent(
    page: Page, screenshot: Callable[[str], Path], served: Served
) -> None:
    # (``page`` comes first: without Chromium the test is skipped before any server starts)
    # given: the UI a marketer opens
    page.goto(served.ui)
    _sidebar(page, "Deployments")

    # then: every deployment the project serves is listed, daily-run scheduled at 06:00
    for name in _deployment_names():
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="daily-run")).to_contain_text("At 06:00 AM")
    screenshot("01-deployments")

    # and: in the shop's time zone (the schedule's form says which)
    page.get_by_role("link", name="daily-run", exact=True).first.click()
    schedule = page.locator("div").filter(has_text="At 06:00 AM").filter(has=page.get_by_role("button")).last
    schedule.get_by_role("button", name="Open menu").click()
    page.get_by_role("menuitem", name="Edit").click()
    form = page.get_by_role("dialog", name="Edit Schedule")
    expect(form.get_by_label("Value")).to_have_value("0 6 * * *")
    expect(form).to_contain_text(SHOP_TIMEZONE.replace("/", " / "))
    expect(form.get_by_text("dry_run", exact=False)).to_be_visible()  # the form has loaded: daily-run's parameter
    screenshot("02-daily-run-schedule")
    page.keyboard.press("Escape")

    # when: the marketer fills in the ad-hoc campaign's form: who, which template, an offer, to be sent now
    _sidebar(page, "Deployments")
    page.get_by_role("link", name="adhoc-campaign", exact=True).first.click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Custom run").click()
    page.get_by_label("Name", exact=True).fill(CAMPAIGN)
    # the catalog's segments and templates are selects
    _choose(page, "Segment (Optional)", "never_bought")
    _choose(page, "Template (Optional)", "win_back")
    page.get_by_role("tab", name="Offer", exact=True).click()
    page.get_by_label("Coupon Prefix", exact=True).fill("SPRING")
    page.get_by_label("Percent Off", exact=True).fill("15")
    page.get_by_label("Valid Days", exact=True).fill("14")
    page.get_by_role("tab", name="date-time", exact=True).click()  # Send At: today (already past), i.e. now
    page.get_by_role("button", name="MM/DD/YYYY hh:mm aa").click()
    page.get_by_role("dialog").get_by_role("button", name=re.compile(r"^Today, ")).click()
    page.keyboard.press("Escape")
    expect(page.get_by_text(datetime.now(UTC).strftime("%m/%d/%Y"))).to_be_visible()
    run_name = page.get_by_label("Run Name").input_value()
    screenshot("03-adhoc-campaign-form")
    page.get_by_role("button", name="Submit").click()

    # then: the run plans the audience, publishes its preview and waits for approval
    page.get_by_role("link", name=run_name).first.click()
    _flow_run(served, run_name, lambda run: run.state.is_paused())
    audience, to_send = _planned(Path(os.environ["LOYALTY_OUTPUT_DIR"]))
    page.reload()
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text(artifact_key(CAMPAIGN), exact=True).click()
    page.get_by_role("link", name=re.compile(r"^[0-9a-f]{8}$")).click()
    preview = page.locator("body")
    expect(page.get_by_text(f"{audience} customers", exact=True)).to_be_visible()
    expect(preview).to_contain_text(f"Send {to_send} emails?")
    expect(preview).to_contain_text("Здравствуйте, Анна!")  # the Russian sample, with its text
    expect(preview).to_contain_text("Cześć, Anno!")
    expect(preview).not_to_contain_text("@example.com")
    screenshot("04-preview-artifact")
    assert _ses_sent() == 0  # nothing goes out before the approval

    # when: the marketer approves the paused run from the UI
    _sidebar(page, "Runs")
    page.get_by_role("link", name=run_name).first.click()
    page.get_by_role("button", name="Open menu").first.click()
    page.get_by_role("menuitem", name="Resume").click()
    approval = page.get_by_role("dialog", name="Resume Flow Run")
    expect(approval).to_contain_text(f"Send {to_send} emails?")
    expect(approval).to_contain_text(f"{audience} customers in the audience")
    approval.get_by_role("switch", name="Approved").click()
    approval.get_by_label("Comment").fill("Looks right, send it")
    screenshot("05-approval")
    approval.get_by_role("button", name="Resume").click()

    # then: the messages the plan meant to send arrive at the local SES (inline, or through send-wave runs)
    sent = wait_for(f"{to_send} messages at the local SES", lambda: _ses_sent_at_least(to_send), 120, served.alive)
    assert sent == to_send
    _flow_run(served, run_name, lambda run: run.state.is_completed())
    assert _ses_sent() == to_send  # and nobody a second one
    page.reload()
    expect(page.get_by_text("Completed").first).to_be_visible()
    expect(page.get_by_text(f"Beginning flow run '{run_name}'")).to_be_visible()  # its log has loaded
    screenshot("06-sent")


COPY_SHOP_URL = "https://shop.example.com/new"
# What the marketer writes in the form, per locale: a subject and a Markdown body with the templates' variables.
COPY = {
    "ru": (
        "{{ greeting_name }}, весна пришла",
        "{{ greeting_name }}, здравствуйте!\n\n"
        "Весна уже в нашем магазине: **новые игрушки**, лежанки и лакомства.\n\n"
        "- игрушки для прогулок\n- мягкие лежанки\n\n"
        f"[Посмотреть новинки]({COPY_SHOP_URL})",
    ),
    "pl": (
        "{{ greeting_name }}, wiosna już u nas",
        "Cześć, {{ greeting_name }}!\n\n"
        "Wiosna już u nas: **nowe zabawki**, legowiska i przysmaki.\n\n"
        "- zabawki na spacery\n- miękkie legowiska\n\n"
        f"[Zobacz nowości]({COPY_SHOP_URL})",
    ),
}
# The A/B test of the subject, 50/50; B names the customer (the preview's made-up one: Анна, Anna).
LANGUAGES = {"ru": "Russian", "pl": "Polish", "en": "English"}
SUBJECT_VARIANTS = (
    {"ru": "Весенние новинки для вас", "pl": "Wiosenne nowości dla Ciebie"},
    {
        "ru": "{{ greeting_name }}, весна пришла — загляните к нам",
        "pl": "{{ greeting_name }}, wiosna już u nas — zajrzyj",
    },
)
# What a marketer might paste into a body: a script and a link that runs one.
UNSAFE = "\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1))"


def _after(page: Page, label: str, what: str, nth: int = 0) -> Locator:
    """The ``nth`` field control ``what`` (an XPath step) after a field's label: Prefect does not tie them together."""
    return page.locator(f"xpath=//*[normalize-space(text())='{label}']/following::{what}[1]").nth(nth)


def _copy_campaign(day: date) -> str:
    """A campaign name whose 50/50 subject split gives the shop's ru and pl newcomers both variants on ``day``.

    The variant is a hash of campaign, day and customer: with four messages, one name in eight would give them all
    the same subject on a given day, and the test would read nothing of the A/B test.
    """
    sendable = ("N000", "N001", "N004", "N006")  # _shop's ru and pl newcomers with email consent
    for n in itertools.count(1):
        name = f"spring_copy_{n}"
        if {choose_variant([0.5, 0.5], f"{PREFIX}{name}", day.isoformat(), c) for c in sendable} == {"A", "B"}:
            return name
    raise AssertionError("unreachable")


def _write_copy(page: Page, name: str, unsafe: str = "") -> str:
    """Open the ad-hoc form, write campaign ``name``'s copy (ru, pl; subject A/B 50/50) for never_bought, sent now.

    Returns the run's name. ``unsafe`` goes at the end of the Russian body.
    """
    _sidebar(page, "Deployments")
    page.get_by_role("link", name="adhoc-campaign", exact=True).first.click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Custom run").click()
    page.get_by_label("Name", exact=True).fill(name)
    _choose(page, "Segment (Optional)", "never_bought")
    page.get_by_role("tab", name="Email copy", exact=True).click()
    # "Russian", "Polish" and "English", each with a "Subject and body" tab: ru and pl are written, en stays None
    locale_tabs = page.get_by_role("tab", name="Subject and body", exact=True)
    for n, (subject, body) in enumerate(COPY.values()):
        locale_tabs.nth(n).click()
        page.get_by_label("Subject", exact=True).nth(n).fill(subject)
        page.get_by_label("Body", exact=True).nth(n).fill(body + (unsafe if n == 0 else ""))
    _after(page, "Missing Locale (Optional)", "*[normalize-space(.)='nearest']").click()  # the English: left out
    page.get_by_role("option", name="skip", exact=True).click()
    for n, variant in enumerate(SUBJECT_VARIANTS):
        page.get_by_role("button", name="Add item", exact=True).click()
        page.get_by_label("Share", exact=True).nth(n).fill("0.5")
        for locale, subject in variant.items():
            label = f"Subject in {LANGUAGES[locale]} (Optional)"
            _after(page, label, "*[@role='tab' and normalize-space(.)='str']", n).click()
            _after(page, label, "textarea", n).fill(subject)
    page.get_by_role("tab", name="date-time", exact=True).click()  # Send At: today (already past), i.e. now
    page.get_by_role("button", name="MM/DD/YYYY hh:mm aa").click()
    page.get_by_role("dialog").get_by_role("button", name=re.compile(r"^Today, ")).click()
    page.keyboard.press("Escape")
    return page.get_by_label("Run Name").input_value()


def _moto_sent() -> list[Any]:
    """The raw messages the local SES (moto, in this process) accepted."""
    from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def test_a_marketer_writes_the_email_in_the_form_with_an_ab_subject_and_nothing_that_runs_reaches_it(
    page: Page, screenshot: Callable[[str], Path], served: Served
) -> None:
    import email
    from email.policy import default as email_policy

    from tasks.kernel.calendar import business_date

    day = business_date(SHOP_TIMEZONE)
    campaign = _copy_campaign(day)
    page.goto(served.ui)
    # when: the marketer's body carries a script and a javascript: link
    run_name = _write_copy(page, campaign, unsafe=UNSAFE)
    page.get_by_role("button", name="Submit").click()
    page.get_by_role("link", name=run_name).first.click()

    # then: the run is refused before it plans anything, saying why; nothing is sent
    refused = _flow_run(served, run_name, lambda run: run.state.is_failed())
    assert "'<script' is not allowed in an email" in str(refused.state.message)
    page.reload()
    expect(page.get_by_text("is not allowed in an email").first).to_be_visible()
    screenshot("copy-01-refused")
    assert _ses_sent() == 0

    # when: the marketer writes it again without them and submits
    run_name = _write_copy(page, campaign)
    page.get_by_role("tab", name="Email copy", exact=True).scroll_into_view_if_needed()
    screenshot("copy-02-form")
    page.get_by_role("button", name="Submit").click()
    page.get_by_role("link", name=run_name).first.click()

    # then: the preview shows the copy rendered in ru and pl, each subject variant, the English left out
    _flow_run(served, run_name, lambda run: run.state.is_paused())
    page.reload()
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text(artifact_key(campaign), exact=True).click()
    page.get_by_role("link", name=re.compile(r"^[0-9a-f]{8}$")).click()
    preview = page.locator("body")
    expect(preview).to_contain_text("Анна, здравствуйте!")
    expect(preview).to_contain_text("Cześć, Anno!")
    for text in ("Весенние новинки для вас", "Анна, весна пришла — загляните к нам", "Wiosenne nowości dla Ciebie"):
        expect(preview).to_contain_text(text)
    expect(preview).to_contain_text("Anno, wiosna już u nas — zajrzyj")
    expect(preview).to_contain_text("missing_locale=skip")
    expect(preview).not_to_contain_text("alert(1)")
    screenshot("copy-03-preview")

    # when: the marketer approves it from the UI
    output_dir = Path(os.environ["LOYALTY_OUTPUT_DIR"])
    paths = adhoc_paths(output_dir, campaign, day)
    plan = pd.read_parquet(paths.plan)
    to_send = plan.loc[plan["decision"] == Decision.SEND.value].set_index("customer_id")
    _sidebar(page, "Runs")
    page.get_by_role("link", name=run_name).first.click()
    page.get_by_role("button", name="Open menu").first.click()
    page.get_by_role("menuitem", name="Resume").click()
    approval = page.get_by_role("dialog", name="Resume Flow Run")
    approval.get_by_role("switch", name="Approved").click()
    approval.get_by_role("button", name="Resume").click()

    # then: every planned message arrives, each with its locale's subject of its variant, both variants used
    wait_for(f"{len(to_send)} messages at the local SES", lambda: _ses_sent_at_least(len(to_send)), 120, served.alive)
    _flow_run(served, run_name, lambda run: run.state.is_completed())
    assert _ses_sent() == len(to_send) > 0
    assert set(to_send["variant"]) == {"A", "B"}
    customers = pd.read_parquet(paths.table(Table.CUSTOMERS)).set_index("customer_id")
    locales = set()
    for sent in _moto_sent():
        message = email.message_from_string(sent.raw_data, policy=email_policy)
        customer = customers.index[customers["email"] == str(message["To"]).split("<")[-1].rstrip(">")][0]
        locale = str(customers.loc[customer, "locale"])
        locales.add(locale)
        variant = SUBJECT_VARIANTS["AB".index(to_send.loc[customer, "variant"])][locale]
        # spaces aside: a long Cyrillic subject folds into encoded words and RFC 2047 readers drop the space
        expected = variant.replace("{{ greeting_name }}", "").replace(" ", "")
        assert message["Subject"].replace(" ", "").endswith(expected)
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "<strong>" in html and "<li>" in html and f'href="{COPY_SHOP_URL}"' in html
        # nothing that runs, in any part, decoded or not
        parts = [sent.raw_data] + [
            part.get_payload(decode=True).decode()  # type: ignore[union-attr]
            for part in message.walk()
            if not part.is_multipart()
        ]
        for text in parts:
            assert "<script" not in text.lower() and "javascript:" not in text.lower()
    assert locales == {"ru", "pl"}
