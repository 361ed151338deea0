"""Ad-hoc campaigns: the request is checked with clear errors (an offer's template must show its coupon), the audience
resolves, the plan's keys are per day, customers in service recovery are left out unless included, the priority
decides the budget; the preview says so."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from tasks.data.sources import load_raw
from tasks.data.validation import validate_snapshot
from tasks.jobs.adhoc import (
    AdhocError,
    AdhocRequest,
    Audience,
    adhoc_paths,
    build_adhoc_plan,
    campaign_for,
    candidates,
    copy_readers,
    in_service_recovery,
    pauses,
    resolve_audience,
    schedule_sends,
    variant_counts,
    with_variants,
)
from tasks.jobs.adhoc_preview import (
    AdhocPreview,
    approval_description,
    approval_question,
    artifact_key,
    preview_markdown,
    preview_numbers,
    render_copy_samples,
    render_samples_with,
    service_recovery_numbers,
)
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.plan.campaigns import Campaign, Offer, daily_campaigns, load_catalog
from tasks.plan.gates import DeliveryRules, QuietHours
from tasks.plan.history import marketing_history, no_history, sent_history
from tasks.plan.planner import Planning, Suppressed, audience_members, build_plan, campaign_candidates, plan_candidates
from tasks.plan.triggers import ShopData
from tasks.profile.features import build_profile
from tasks.profile.segments import load_segments
from tasks.render.templating import make_environment
from tests.shops import add_rows, tiny_shop, write_shop

AS_OF = date(2024, 6, 1)
MORNING = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)  # before 10:00 in every zone below
SEGMENTS = load_segments(PROJECT_ROOT / "campaigns" / "segments.yaml")
SALE = Offer(coupon_prefix="SPRING", percent_off=10, valid_days=7)


def write_template(root: Path, name: str = "flash_sale") -> Path:
    """A small template with a coupon and an SMS, in English and Russian (Polish falls back to English)."""
    texts = {
        "en": (
            "{% if first_name %}{{ first_name }}, {% endif %}{{ percent_off }}% off today",
            "Hello {{ first_name }}",
        ),
        "ru": (
            "{% if first_name %}{{ first_name }}, {% endif %}скидка {{ percent_off }}%",
            "Здравствуйте, {{ first_name }}",
        ),
    }
    for locale, (subject, greeting) in texts.items():
        folder = root / name / locale
        folder.mkdir(parents=True, exist_ok=True)
        body = f"{greeting}! Code {{{{ coupon_code }}}} until {{{{ coupon_valid_until }}}}. {{{{ unsubscribe_url }}}}"
        (folder / "subject.txt.j2").write_text(subject, encoding="utf-8")
        (folder / "body.txt.j2").write_text(body, encoding="utf-8")
        (folder / "body.html.j2").write_text(f"<p>{body}</p>", encoding="utf-8")
        (folder / "sms.txt.j2").write_text("{{ shop_name }}: -{{ percent_off }}% {{ coupon_code }}", encoding="utf-8")
    return root


def _settings(tmp_path: Path) -> Settings:
    return Settings(templates_dir=write_template(tmp_path / "templates"), campaigns_dir=PROJECT_ROOT / "campaigns")


def _request(**changes: object) -> AdhocRequest:
    fields: dict[str, object] = {"name": "spring_sale", "audience": "vip", "template": "flash_sale", "offer": SALE}
    return AdhocRequest.model_validate(fields | changes)


def _customers() -> pd.DataFrame:
    """Three customers: C1 (ru, email only), C2 (pl, email and SMS), C3 (en, no consent at all)."""
    return pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3"],
            "email": ["anna@example.com", "ola@example.com", "bob@example.com"],
            "phone": [None, "+48512345678", None],
            "first_name": ["Анна", "Ola", "Bob"],
            "locale": ["ru", "pl", "en"],
            "timezone": ["Europe/Moscow", "Europe/Warsaw", "Europe/London"],
            "country": ["RU", "PL", "GB"],
            "email_opt_in": [True, True, False],
            "sms_opt_in": [False, True, False],
        }
    )


def _plan(tmp_path: Path, as_of: date = AS_OF, already: frozenset[str] = frozenset(), history=None, **changes):  # type: ignore[no-untyped-def]
    campaign, _ = campaign_for(_request(channels=("email", "sms"), **changes), _settings(tmp_path))
    members = candidates(pd.Series([True, True, True], index=["C1", "C2", "C3"]), as_of)
    history = (
        sent_history(pd.DataFrame(columns=["customer_id", "campaign", "step", "occurrence", "kind", "decision"]), as_of)
        if history is None
        else history
    )
    sending_at = datetime.combine(as_of, MORNING.timetz())
    return campaign, build_adhoc_plan(
        campaign,
        members,
        _customers(),
        Suppressed(),
        DeliveryRules(),
        history,
        lambda keys: set(already),
        as_of,
        sending_at,
    )


# --- the request -------------------------------------------------------------------------------------------------


def test_a_name_that_is_not_snake_case_is_refused_with_an_example() -> None:
    with pytest.raises(ValidationError, match=r"'Spring Sale' is not snake_case.*\(spring_sale\)"):
        _request(name="Spring Sale")


def test_an_unknown_template_is_one_line_naming_the_closest(tmp_path: Path) -> None:
    with pytest.raises(
        AdhocError, match=r"^unknown template 'flash_sael': no folder .* \(did you mean 'flash_sale'\?\)$"
    ):
        campaign_for(_request(template="flash_sael"), _settings(tmp_path))


def test_a_template_without_the_sms_part_is_refused_for_sms(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (settings.templates_dir / "flash_sale" / "ru" / "sms.txt.j2").unlink()

    with pytest.raises(AdhocError, match=r"flash_sale/ru/sms\.txt\.j2 not found"):
        campaign_for(_request(channels=("email", "sms")), settings)


def test_a_coupon_template_without_an_offer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        AdhocError, match=r"shows a coupon \(coupon_code, coupon_valid_until, percent_off\): give an offer"
    ):
        campaign_for(_request(offer=None), _settings(tmp_path))


def test_a_bad_expression_names_the_closest_column(tmp_path: Path) -> None:
    with pytest.raises(AdhocError, match=r"predicted_clvv.*did you mean 'predicted_clv'"):
        campaign_for(_request(audience="predicted_clvv > 50"), _settings(tmp_path))
    with pytest.raises(AdhocError, match=r"to compare, write =="):
        campaign_for(_request(audience='lifecycle = "lapsed"'), _settings(tmp_path))


def test_a_misspelt_segment_names_the_closest_segment(tmp_path: Path) -> None:
    with pytest.raises(
        AdhocError,
        match=r"audience 'at_rsk' is no segment of .*segments\.yaml \(did you mean the segment 'at_risk'\?\)",
    ):
        campaign_for(_request(audience="at_rsk"), _settings(tmp_path))


def test_the_request_becomes_a_one_step_marketing_campaign_for_today(tmp_path: Path) -> None:
    campaign, audience = campaign_for(_request(holdout_share=0.1), _settings(tmp_path))

    assert campaign.name == "adhoc_spring_sale"
    assert campaign.trigger.type == "adhoc" and campaign.kind == "marketing"
    assert (campaign.priority, campaign.max_delay_days, len(campaign.steps)) == (50, 0, 1)
    assert campaign.offer == SALE and campaign.holdout_share == 0.1
    assert campaign.products == "none"  # the template shows no products: no recommendations needed
    assert audience == Audience(segment="vip", expression="vip and email_opt_in")


# --- the audience ------------------------------------------------------------------------------------------------


def test_a_segment_name_means_the_segment_and_an_expression_means_itself() -> None:
    profile = pd.DataFrame(
        {"customer_id": ["A", "B", "C"], "vip": [True, True, False], "email_opt_in": [True, False, True]}
    )

    by_segment = resolve_audience("vip", SEGMENTS)
    by_expression = resolve_audience("vip or not email_opt_in", SEGMENTS)

    assert by_segment.segment == "vip" and by_expression.segment is None
    members = audience_members(by_segment.expression, profile)
    assert list(members.index[members]) == ["A"]  # the segment: VIPs who read email
    members = audience_members(by_expression.expression, profile)
    assert list(members.index[members]) == ["A", "B"]


# --- the plan ----------------------------------------------------------------------------------------------------


def test_keys_are_the_same_all_day_and_new_the_next_day(tmp_path: Path) -> None:
    _, first = _plan(tmp_path / "a")
    _, again = _plan(tmp_path / "b")
    _, tomorrow = _plan(tmp_path / "c", as_of=date(2024, 6, 2))

    assert list(first["idempotency_key"]) == list(again["idempotency_key"])
    assert "adhoc_spring_sale/1/email/C1/2024-06-01" in set(first["idempotency_key"])
    assert "adhoc_spring_sale/1/sms/C2/2024-06-01" in set(first["idempotency_key"])
    assert set(first["idempotency_key"]).isdisjoint(tomorrow["idempotency_key"])


def test_consent_decides_per_channel_and_the_ledger_makes_a_rerun_a_duplicate(tmp_path: Path) -> None:
    _, plan = _plan(tmp_path / "a")
    sent = frozenset(plan.loc[plan["decision"] == "send", "idempotency_key"])
    _, rerun = _plan(tmp_path / "b", already=sent)

    decisions = {(r.customer_id, r.channel): (r.decision, r.reason) for r in plan.itertuples()}
    assert decisions[("C1", "email")] == ("send", "")
    assert decisions[("C1", "sms")] == ("skipped", "invalid_phone")
    assert decisions[("C2", "sms")] == ("send", "")
    assert decisions[("C3", "email")] == ("skipped", "no_consent")
    assert len(sent) == 3
    assert set(rerun.loc[rerun["reason"] == "duplicate", "idempotency_key"]) == sent


def test_a_customer_the_daily_run_already_messages_today_is_over_budget(tmp_path: Path) -> None:
    daily = pd.DataFrame(
        {
            "customer_id": ["C2"],
            "campaign": ["weekly_sale"],
            "step": [1],
            "occurrence": ["2024-06-01"],
            "kind": ["marketing"],
            "decision": ["send"],
        }
    )

    _, plan = _plan(tmp_path, history=sent_history(daily, AS_OF))

    c2 = plan.loc[plan["customer_id"] == "C2"]
    assert set(c2["reason"]) == {"frequency_cap"} and set(c2["decision"]) == {"skipped"}
    assert plan.loc[plan["customer_id"] == "C1", "decision"].tolist() == ["send", "skipped"]


def test_a_send_hour_already_past_goes_now_and_quiet_hours_move_it_to_their_end() -> None:
    plan = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "decision": ["send", "send"],
            "reason": ["", ""],
            "send_at": pd.to_datetime(["2024-06-01 07:00", "2024-06-01 08:00"], utc=True),  # 10:00 local
        }
    )
    rules = DeliveryRules(quiet=QuietHours(21, 9))

    afternoon = schedule_sends(plan, _customers(), datetime(2024, 6, 1, 12, 0, tzinfo=UTC), None, rules)
    late = schedule_sends(plan, _customers(), datetime(2024, 6, 1, 18, 30, tzinfo=UTC), None, rules)
    early = schedule_sends(plan, _customers(), datetime(2024, 6, 1, 3, 0, tzinfo=UTC), None, rules)

    assert afternoon["send_at"].tolist() == [pd.Timestamp("2024-06-01 12:00", tz="UTC")] * 2
    # 21:30 in Moscow is quiet: 09:00 there tomorrow; 20:30 in Warsaw is not
    assert late["send_at"].tolist() == [
        pd.Timestamp("2024-06-02 06:00", tz="UTC"),
        pd.Timestamp("2024-06-01 18:30", tz="UTC"),
    ]
    assert early["send_at"].tolist() == plan["send_at"].tolist()  # the planned local hour stands


def test_a_requested_send_time_holds_for_everyone_out_of_their_quiet_hours() -> None:
    plan = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3"],
            "decision": ["send", "deferred", "send"],
            "reason": ["", "quiet_hours", ""],
            "send_at": pd.to_datetime(["2024-06-01 07:00", "2024-06-02 07:00", "2024-06-01 09:00"], utc=True),
        }
    )
    evening = datetime(2024, 6, 1, 19, 0, tzinfo=UTC)  # 22:00 in Moscow, 21:00 in Warsaw, 20:00 in London

    requested = schedule_sends(plan, _customers(), MORNING, evening, DeliveryRules(quiet=QuietHours(21, 9)))

    assert requested["send_at"].tolist() == [
        pd.Timestamp("2024-06-02 06:00", tz="UTC"),  # 09:00 in Moscow the next morning
        pd.Timestamp("2024-06-02 07:00", tz="UTC"),  # 09:00 in Warsaw
        pd.Timestamp("2024-06-01 19:00", tz="UTC"),
    ]
    assert requested["decision"].tolist() == ["send"] * 3  # judged at the requested time, not the default hour


def test_the_budget_counts_the_daily_plan_of_today_and_ad_hoc_plans_of_earlier_days_not_its_own(tmp_path: Path) -> None:
    def plan_file(path: Path, customer: str, campaign: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {"customer_id": [customer], "campaign": [campaign], "step": [1], "occurrence": ["2024-05-31"]}
        pd.DataFrame(row | {"kind": ["marketing"], "decision": ["send"]}).to_parquet(path)

    plan_file(RunPaths.for_day(tmp_path, AS_OF).plan, "C1", "weekly_sale")
    plan_file(adhoc_paths(tmp_path, "may_sale", date(2024, 5, 31)).plan, "C2", "adhoc_may_sale")
    plan_file(adhoc_paths(tmp_path, "old_sale", date(2024, 4, 1)).plan, "C3", "adhoc_old_sale")  # over 30 days ago
    own = adhoc_paths(tmp_path, "june_sale", AS_OF).plan
    plan_file(own, "C4", "adhoc_june_sale")  # this campaign's own plan, planned again

    history = marketing_history(tmp_path, AS_OF, exclude=own)

    assert sorted(zip(history["customer_id"], history["campaign"], history["day"].dt.date, strict=True)) == [
        ("C1", "weekly_sale", AS_OF),
        ("C2", "adhoc_may_sale", date(2024, 5, 31)),
    ]


# --- the preview -------------------------------------------------------------------------------------------------


def _preview(to_send: dict[str, int]) -> AdhocPreview:
    return AdhocPreview(
        campaign="adhoc_spring_sale",
        priority=50,
        audience_label="segment vip",
        expression="vip and email_opt_in",
        as_of=AS_OF,
        channels=list(to_send),
        audience=1300,
        to_send=sum(to_send.values()),
        to_send_by_channel=to_send,
        holdout=0,
        not_sent_by_reason={},
        by_segment={},
        by_channel={},
        locales={},
    )


def test_the_question_states_the_messages_per_channel() -> None:
    assert approval_question(_preview({"email": 1234, "sms": 56})) == "Send 1,234 emails and 56 SMS?"
    assert approval_question(_preview({"email": 1})) == "Send 1 email?"
    assert artifact_key("spring_sale") == "adhoc-spring-sale-preview"


def test_the_preview_counts_and_shows_samples_without_anyone_s_data(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    campaign, plan = _plan(tmp_path / "plan")
    segments = pd.DataFrame({"customer_id": ["C1", "C2", "C3"], "segment": ["vip", "vip", "other"]})
    audience = Audience(segment="vip", expression="vip and email_opt_in")

    preview = preview_numbers(campaign, audience, plan, _customers(), segments, AS_OF)
    samples = render_samples_with(make_environment(settings.templates_dir), campaign, preview.locales, AS_OF, settings)
    markdown = preview_markdown(preview, samples, dry_run=False)

    assert (preview.audience, preview.to_send, preview.to_send_by_channel) == (3, 3, {"email": 2, "sms": 1})
    assert preview.by_segment == {"vip": {"customers": 2, "email": 2, "sms": 1}, "other": {"customers": 1}}
    assert preview.not_sent_by_reason == {"invalid_phone": 2, "no_consent": 1}
    assert [(s.locale, s.channel, s.customers) for s in samples] == [
        ("en", "email", 2),  # Polish has no template: English
        ("en", "sms", 2),
        ("ru", "email", 1),
        ("ru", "sms", 1),
    ]
    assert "**Subject:** Анна, скидка 10%" in markdown and "Send 2 emails and 1 SMS?" in markdown
    for personal in ("@example.com", "+48", "C1", "C2", "Ola", "Bob"):
        assert personal not in markdown


# --- an offer's template shows its coupon ------------------------------------------------------------------------


def _template_parts(root: Path, name: str, html: str, text: str, sms: str | None = None) -> None:
    folder = root / name / "en"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subject.txt.j2").write_text("{{ percent_off }}% off this weekend", encoding="utf-8")
    (folder / "body.html.j2").write_text(html, encoding="utf-8")
    (folder / "body.txt.j2").write_text(text, encoding="utf-8")
    if sms is not None:
        (folder / "sms.txt.j2").write_text(sms, encoding="utf-8")


def test_an_offer_whose_template_does_not_show_the_coupon_is_refused_before_the_preview(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    # the old README example: "up to 30%" and the percentage, never the code the customer would need
    body = "It's {{ weekday }}: up to {{ percent_off }}% off. {{ unsubscribe_url }}"
    _template_parts(settings.templates_dir, "weekend_sale", f"<p>{body}</p>", body)

    with pytest.raises(AdhocError) as refused:
        campaign_for(_request(template="weekend_sale"), settings)

    assert str(refused.value) == (
        "template 'weekend_sale' does not show the coupon: its code is not in the rendered en/body.html, "
        "en/body.txt; choose a template that shows {{ coupon_code }} (or add it to this one), or send without an offer"
    )
    assert "\n" not in str(refused.value)


def test_the_coupon_check_reads_the_rendered_message_not_the_template_source(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    # the text names coupon_code, but only for a variant an ad-hoc campaign never has: nobody would see it
    hidden = "{% if variant == 'stronger' %}Code {{ coupon_code }}{% endif %} {{ unsubscribe_url }}"
    _template_parts(settings.templates_dir, "hidden_code", "<p>Code {{ coupon_code }}</p>", hidden)

    with pytest.raises(
        AdhocError, match=r"^template 'hidden_code' does not show the coupon: .* rendered en/body\.txt;"
    ):
        campaign_for(_request(template="hidden_code"), settings)


def test_an_sms_without_the_code_is_refused_only_when_the_campaign_sends_sms(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (settings.templates_dir / "flash_sale" / "en" / "sms.txt.j2").write_text(
        "{{ shop_name }}: -{{ percent_off }}% today only", encoding="utf-8"
    )

    with pytest.raises(AdhocError, match=r"does not show the coupon: its code is not in the rendered en/sms\.txt;"):
        campaign_for(_request(channels=("email", "sms")), settings)
    campaign_for(_request(channels=("email",)), settings)


def test_the_readme_s_adhoc_example_shows_the_coupon_it_offers() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"`uv run loyalty adhoc ([^`]*)`", readme)
    assert example is not None
    options = dict(re.findall(r"--([a-z-]+) ([^-\s\[\]][^\s\[\]]*)", example.group(1)))
    channels = re.findall(r"--channel (\w+)", example.group(1)) or ["email"]
    request = AdhocRequest(
        name=options["name"],
        audience=options["audience"],
        template=options["template"],
        channels=tuple(channels),  # type: ignore[arg-type]  # pydantic parses the channel names
        offer=Offer(
            coupon_prefix=options["coupon-prefix"],
            percent_off=int(options["percent-off"]),
            valid_days=int(options.get("valid-days", 7)),
        ),
        as_of=AS_OF,
    )
    settings = Settings(templates_dir=PROJECT_ROOT / "templates", campaigns_dir=PROJECT_ROOT / "campaigns")

    campaign, _ = campaign_for(request, settings)  # raises if the template does not show the coupon

    assert campaign.offer is not None


# --- customers in service recovery, on a minimal shop -------------------------------------------------------------

CATALOG = load_catalog(PROJECT_ROOT / "campaigns")
APOLOGY_DAY = date(2024, 5, 30)
LOW_RATING = {
    "customer_id": "C2",
    "product_id": "P2",
    "type": "review",
    "at": "2024-05-30T06:00:00Z",
    "rating": "1",
    "text": "arrived broken",
}


def _shop_day(folder: Path, frames: dict[Table, pd.DataFrame], as_of: date) -> ShopData:
    """A minimal shop's day as the daily run reads it: the clean tables, the profile and its details."""
    snapshot = validate_snapshot(load_raw(str(write_shop(frames, folder))), as_of)
    parts = build_profile(snapshot.frames, as_of)
    details = {n: getattr(parts, n) for n in ("profile", "interests", "replenishment", "incidents", "purchase_days")}
    return ShopData.from_frames(as_of, {t.value: f for t, f in snapshot.frames.items()} | details)


def _apology_sent(tmp_path: Path) -> dict[Table, pd.DataFrame]:
    """The daily run of 30 May: C2 rated an order 1 of 5 that morning and the service recovery apology goes out."""
    frames = add_rows(tiny_shop(), Table.EVENTS, [LOW_RATING])
    data = _shop_day(tmp_path / "shop-apology", frames, APOLOGY_DAY)
    sending_at = datetime.combine(APOLOGY_DAY, time(3), UTC)
    recovery = {"service_recovery": CATALOG["service_recovery"]}
    plan = build_plan(recovery, data, Suppressed(), DeliveryRules(), lambda keys: set(), no_history(), sending_at, b"k")
    assert plan[["customer_id", "campaign", "decision"]].to_numpy().tolist() == [["C2", "service_recovery", "send"]]
    path = RunPaths.for_day(tmp_path / "out", APOLOGY_DAY).plan
    path.parent.mkdir(parents=True)
    plan.to_parquet(path, index=False)
    return frames


def _adhoc_on(
    tmp_path: Path, frames: dict[Table, pd.DataFrame], include: bool = False
) -> tuple[pd.DataFrame, AdhocPreview]:
    """Plan and count an ad-hoc campaign to everyone with an email on 1 June, as ``plan_adhoc`` does."""
    campaign, audience = campaign_for(
        _request(audience="has_email", include_service_recovery=include), _settings(tmp_path / "t")
    )
    data = _shop_day(tmp_path / "shop-adhoc", frames, AS_OF)
    customers = data[Table.CUSTOMERS]
    members = candidates(audience_members(audience.expression, data["profile"]), AS_OF)
    history = marketing_history(tmp_path / "out", AS_OF)
    others = {n: c for n, c in CATALOG.items() if n in daily_campaigns(CATALOG) or c.pause_promotions_days}
    plan = build_adhoc_plan(
        campaign,
        members,
        customers,
        Suppressed(),
        DeliveryRules(),
        history,
        lambda keys: set(),
        AS_OF,
        MORNING,
        None,
        others,
        data,
        include,
    )
    recovering = in_service_recovery(members["customer_id"], CATALOG, history, AS_OF)
    recovery = service_recovery_numbers(plan, recovering, include, pauses(CATALOG))
    segments = pd.DataFrame({"customer_id": customers["customer_id"], "segment": "other"})
    return plan, preview_numbers(campaign, audience, plan, customers, segments, AS_OF, recovery)


def test_a_customer_in_service_recovery_is_left_out_and_the_preview_says_so(tmp_path: Path) -> None:
    frames = _apology_sent(tmp_path)

    plan, preview = _adhoc_on(tmp_path, frames)

    decided = {r.customer_id: (r.decision, r.reason) for r in plan.itertuples()}
    assert decided == {"C1": ("send", ""), "C2": ("skipped", "paused"), "C3": ("send", "")}
    assert preview.service_recovery.customers == 1 and not preview.service_recovery.included
    note = (
        "1 customer in service recovery left out: an apology (service_recovery, 14 days) reached them within its "
        "pause on promotions. To send to them anyway: include_service_recovery (--include-service-recovery)."
    )
    assert f"**{note}**" in preview_markdown(preview, [], dry_run=False)
    assert note in approval_description(preview, "spring_sale")
    assert "Send 2 emails?" in approval_description(preview, "spring_sale")
    assert "| not sent: paused | 1 |" in preview_markdown(preview, [], dry_run=False)


def test_the_option_keeps_customers_in_service_recovery_and_the_preview_says_so(tmp_path: Path) -> None:
    frames = _apology_sent(tmp_path)

    plan, preview = _adhoc_on(tmp_path, frames, include=True)

    assert set(plan["decision"]) == {"send"} and len(plan) == 3
    assert (preview.service_recovery.customers, preview.service_recovery.included) == (1, True)
    note = (
        "1 customer in service recovery included (include_service_recovery): an apology (service_recovery, "
        "14 days) reached them within its pause on promotions."
    )
    assert note in preview_markdown(preview, [], dry_run=False)
    assert note in approval_description(preview, "spring_sale")


def test_nobody_in_service_recovery_no_word_about_it(tmp_path: Path) -> None:
    _, preview = _adhoc_on(tmp_path, tiny_shop())

    assert preview.service_recovery.customers == 0
    assert "service recovery" not in preview_markdown(preview, [], dry_run=False)


# --- the priority in the frequency budget ------------------------------------------------------------------------

# A daily newsletter every Friday, below the ad-hoc campaign's default priority (50).
FRIDAY_NEWS = Campaign.model_validate(
    {
        "name": "friday_news",
        "kind": "marketing",
        "channels": ["email"],
        "template": "friday_news",
        "priority": 20,
        "trigger": {"type": "schedule", "weekday": "friday"},
        "products": "none",
    }
)
FRIDAY = date(2024, 6, 7)  # AS_OF (a Saturday) + 6: inside the week the budget counts
ONE_A_WEEK = DeliveryRules(marketing_per_week=1)


def _week(tmp_path: Path, **changes: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ad-hoc campaign on Saturday, then the Friday newsletter's daily plan: one marketing message a week."""
    campaign, _ = campaign_for(_request(**changes), _settings(tmp_path))
    customers = _customers()
    profile = pd.DataFrame({"customer_id": customers["customer_id"]})
    frames = {Table.CUSTOMERS.value: customers, "profile": profile}
    members = candidates(pd.Series(True, index=["C1"]), AS_OF)
    adhoc = build_adhoc_plan(
        campaign,
        members,
        customers,
        Suppressed(),
        ONE_A_WEEK,
        no_history(),
        lambda keys: set(),
        AS_OF,
        MORNING,
        others={FRIDAY_NEWS.name: FRIDAY_NEWS},
        data=ShopData.from_frames(AS_OF, frames),
    )
    planning = Planning(
        as_of=FRIDAY,
        sending_at=datetime.combine(FRIDAY, time(3), UTC),
        rules=ONE_A_WEEK,
        catalog={FRIDAY_NEWS.name: FRIDAY_NEWS},
        history=sent_history(adhoc, AS_OF),
    )
    due = campaign_candidates(FRIDAY_NEWS, ShopData.from_frames(FRIDAY, frames), FRIDAY)
    daily = plan_candidates([(FRIDAY_NEWS, due.loc[due["customer_id"] == "C1"])], customers, planning)
    return adhoc, daily


def test_the_priority_decides_the_week_s_room_against_a_lower_priority_daily_campaign(tmp_path: Path) -> None:
    above, friday_after_above = _week(tmp_path / "above")  # default 50 > the newsletter's 20
    below, friday_after_below = _week(tmp_path / "below", priority=10)

    assert (above.loc[0, "priority"], above.loc[0, "decision"]) == (50, "send")
    assert friday_after_above[["decision", "reason"]].to_numpy().tolist() == [["skipped", "frequency_cap"]]
    # below the newsletter, the campaign keeps the week's room for it
    assert below[["priority", "decision", "reason", "yields_to"]].to_numpy().tolist() == [
        [10, "skipped", "reserved", "friday_news"]
    ]
    assert friday_after_below[["decision", "reason"]].to_numpy().tolist() == [["send", ""]]


def test_the_priority_is_0_to_100_and_shown_in_the_preview(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        _request(priority=101)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        _request(priority=-1)
    campaign, plan = _plan(tmp_path, priority=75)
    audience = Audience(segment="vip", expression="vip and email_opt_in")
    segments = pd.DataFrame({"customer_id": ["C1", "C2", "C3"], "segment": "vip"})

    preview = preview_numbers(campaign, audience, plan, _customers(), segments, AS_OF)

    assert campaign.priority == preview.priority == 75 and set(plan["priority"]) == {75}
    assert "Priority in the frequency budget: 75" in preview_markdown(preview, [], dry_run=False)
    assert "(priority 75)" in approval_description(preview, "spring_sale")


# --- a copy written in the request -------------------------------------------------------------------------------

SPRING_COPY = {
    "ru": {
        "subject": "{% if greeting_name %}{{ greeting_name }}, в{% else %}В{% endif %}есна пришла: -{{ percent_off }}%",
        "body": "Здравствуйте{% if greeting_name %}, {{ greeting_name }}{% endif %}!\n\n"
        "Ваш код **{{ coupon_code }}** действует до {{ coupon_valid_until }}.\n\n"
        "[Выбрать подарок]({{ shop_url }}/vesna)",
    },
    "pl": {
        "subject": "{% if greeting_name %}{{ greeting_name }}, w{% else %}W{% endif %}iosna w sklepie: -{{ percent_off }}%",
        "body": "Cześć{% if greeting_name %}, {{ greeting_name }}{% endif %}!\n\n"
        "Twój kod **{{ coupon_code }}** jest ważny do {{ coupon_valid_until }}.\n\n"
        "[Wybierz prezent]({{ shop_url }}/wiosna)",
    },
    "subject_variants": [
        {
            "share": 0.5,
            "ru": "Весенняя распродажа: -{{ percent_off }}%",
            "pl": "Wiosenna wyprzedaż: -{{ percent_off }}%",
        },
        {"share": 0.5, "ru": "Только до {{ coupon_valid_until }}", "pl": "Tylko do {{ coupon_valid_until }}"},
    ],
}


def _copy_request(**changes: object) -> AdhocRequest:
    return _request(**({"template": "", "email_copy": SPRING_COPY} | changes))


def test_a_request_has_a_template_or_a_copy_and_a_copy_is_an_email() -> None:
    with pytest.raises(ValidationError, match="either a template or the email's copy"):
        _request(email_copy=SPRING_COPY)
    with pytest.raises(ValidationError, match="either a template or the email's copy"):
        _request(template="")
    with pytest.raises(ValidationError, match="channels must be email only"):
        _copy_request(channels=("email", "sms"))


def test_a_copy_s_offer_needs_its_code_in_every_body_and_a_code_needs_an_offer(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(update={"templates_dir": PROJECT_ROOT / "templates"})
    no_code = SPRING_COPY | {"pl": {"subject": "Wiosna", "body": "Cześć! Zajrzyj do sklepu."}}

    with pytest.raises(AdhocError, match=r"the pl body does not show the coupon: add \{\{ coupon_code \}\}"):
        campaign_for(_request(template="", email_copy=no_code), settings)
    with pytest.raises(AdhocError, match=r"the copy shows a coupon \(coupon_code, coupon_valid_until, percent_off\)"):
        campaign_for(_copy_request(offer=None), settings)

    campaign, _ = campaign_for(_copy_request(), settings)
    assert campaign.template == "adhoc_spring_sale" and campaign.channels == ("email",)


def test_skip_leaves_out_customers_without_their_language_and_nearest_keeps_them() -> None:
    members = candidates(pd.Series([True, True, True], index=["C1", "C2", "C3"]), AS_OF)
    nearest = _copy_request().email_copy
    assert nearest is not None
    skip = nearest.model_copy(update={"missing_locale": "skip"})

    kept, left_out = copy_readers(members, _customers(), skip)
    assert kept["customer_id"].tolist() == ["C1", "C2"] and left_out == {"en": 1}
    kept, left_out = copy_readers(members, _customers(), nearest)
    assert kept["customer_id"].tolist() == ["C1", "C2", "C3"] and left_out == {}
    assert nearest.locale_for("en") == "ru"  # no English: the first language written


def test_each_message_records_its_subject_variant_the_same_on_a_rerun(tmp_path: Path) -> None:
    copy = _copy_request().email_copy
    assert copy is not None
    _, plan = _plan(tmp_path)

    first, again = with_variants(plan, copy), with_variants(plan.sample(frac=1, random_state=1), copy)

    assert set(first["variant"]) <= {"A", "B"}
    assert (
        first.set_index("idempotency_key")["variant"].to_dict()
        == again.set_index("idempotency_key")["variant"].to_dict()
    )
    # one customer's email and SMS are one message: the same variant
    assert first.groupby("customer_id")["variant"].nunique().max() == 1
    sending = first.loc[first["decision"] == "send", "variant"].value_counts().to_dict()
    assert variant_counts(first) == sending


def test_the_preview_shows_the_copy_in_every_language_with_each_subject_for_a_made_up_customer(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(update={"templates_dir": PROJECT_ROOT / "templates"})
    request = _copy_request(email_copy=SPRING_COPY | {"missing_locale": "skip"})
    campaign, _ = campaign_for(request, settings)
    assert request.email_copy is not None
    _, plan = _plan(tmp_path / "plan")
    audience = Audience(segment="vip", expression="vip and email_opt_in")
    segments = pd.DataFrame({"customer_id": ["C1", "C2"], "segment": ["vip", "vip"]})
    preview = preview_numbers(campaign, audience, plan, _customers(), segments, AS_OF).model_copy(
        update={"no_copy_in_locale": {"en": 1}, "variants": {"A": 1, "B": 1}}
    )

    samples = render_copy_samples(
        make_environment(settings.templates_dir),
        campaign,
        request.email_copy,
        {"ru": 1, "pl": 1, "en": 1},
        AS_OF,
        settings,
    )
    markdown = preview_markdown(preview, samples, dry_run=False)

    assert [(s.locale, s.customers) for s in samples] == [("ru", 1), ("pl", 1)]  # en is skipped: nobody gets ru
    assert samples[0].subjects == {"A": "Весенняя распродажа: -10%", "B": "Только до 8 июня"}
    assert samples[1].subjects == {"A": "Wiosenna wyprzedaż: -10%", "B": "Tylko do 8 czerwca"}
    assert samples[1].text.startswith("Cześć, Anno!\n\nTwój kod SPRING-")  # the vocative
    assert "Wybierz prezent (https://" in samples[1].text
    assert "**Subject A:** Весенняя распродажа: -10%" in markdown and "**Subject B:** Tylko do" in markdown
    assert "Left out, no copy in their language (missing_locale=skip): en 1." in markdown
    for personal in ("@example.com", "C1", "C2", "Ola", "Bob"):
        assert personal not in markdown


def test_a_copy_needs_the_shop_s_email_layout(tmp_path: Path) -> None:
    with pytest.raises(
        AdhocError, match=r"a written copy goes into the shop's email layout: no .*_layout/email\.html\.j2"
    ):
        campaign_for(_copy_request(), _settings(tmp_path))


def test_the_form_offers_the_catalog_s_segments_and_templates_and_takes_one_segment_or_a_condition(
    tmp_path: Path,
) -> None:
    schema = AdhocRequest.model_json_schema()["properties"]
    assert {"", "vip", "never_bought"} <= set(schema["segment"]["enum"])  # a select in the Prefect UI
    assert {"", "win_back", "weekly_sale"} <= set(schema["template"]["enum"])
    assert "_layout" not in schema["template"]["enum"]

    _, audience = campaign_for(_request(audience="", segment="vip"), _settings(tmp_path))
    assert audience == Audience(segment="vip", expression="vip and email_opt_in")
    with pytest.raises(ValidationError, match="either a segment or an audience condition, not both"):
        _request(segment="vip")
    with pytest.raises(ValidationError, match="either a segment or an audience condition, not both"):
        _request(audience="")
