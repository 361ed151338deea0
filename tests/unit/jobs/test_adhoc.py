"""Ad-hoc campaigns: the request is checked with clear errors, the audience resolves, the plan's keys are per day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from tasks.jobs.adhoc import (
    AdhocError,
    AdhocRequest,
    Audience,
    adhoc_paths,
    build_adhoc_plan,
    campaign_for,
    candidates,
    resolve_audience,
    schedule_sends,
)
from tasks.jobs.adhoc_preview import (
    AdhocPreview,
    approval_question,
    artifact_key,
    preview_markdown,
    preview_numbers,
    render_samples_with,
)
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.plan.campaigns import Offer
from tasks.plan.gates import DeliveryRules, QuietHours
from tasks.plan.history import marketing_history, sent_history
from tasks.plan.planner import Suppressed, audience_members
from tasks.profile.segments import load_segments
from tasks.render.templating import make_environment

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
