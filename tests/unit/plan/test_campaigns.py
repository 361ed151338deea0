"""The campaign catalog: YAML validated into campaigns, errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.kernel.enums import Channel, MessageKind
from tasks.kernel.errors import CatalogError
from tasks.plan.campaigns import LapseTrigger, Offer, daily_campaigns, load_campaign, load_catalog

HEAD = """\
name: come_back
kind: marketing
channels: [email, sms]
template: win_back
priority: 60
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_campaign_gets_one_step_on_the_occurrence_and_the_documented_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "come_back.yaml", HEAD + "trigger: {type: lapse, days: 90}\n")

    campaign = load_campaign(path)

    assert campaign.kind is MessageKind.MARKETING
    assert campaign.channels == (Channel.EMAIL, Channel.SMS)
    assert campaign.trigger == LapseTrigger(type="lapse", days=90)
    assert [(s.step, s.offset_days) for s in campaign.steps] == [(1, 0)]
    assert campaign.offsets == (0, 0)
    assert (campaign.send_hour_local, campaign.holdout_share, campaign.products, campaign.enabled) == (
        10,
        0.0,
        "picks",
        True,
    )


def test_a_step_with_its_own_offer_has_its_own_coupon_window(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "come_back.yaml",
        HEAD
        + """\
trigger: {type: lapse, days: 90}
steps:
  - {step: 1, offset_days: 0}
  - {step: 2, offset_days: 7}
  - {step: 3, offset_days: 21, offer: {coupon_prefix: BACKVIP, percent_off: 25, valid_days: 14}}
offer: {coupon_prefix: BACK, percent_off: 15, valid_days: 10}
""",
    )

    campaign = load_campaign(path)
    first, second, third = campaign.steps
    usual, stronger = campaign.step_offer(first), campaign.step_offer(third)

    assert usual == campaign.step_offer(second) == Offer(coupon_prefix="BACK", percent_off=15, valid_days=10)
    assert stronger is not None and stronger.coupon_prefix == "BACKVIP"
    assert campaign.offer_window(usual) == (0, 17)  # steps 1-2 carry it, then 10 days
    assert campaign.offer_window(stronger) == (21, 35)
    assert campaign.offsets == (0, 21)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("trigger: {type: lapse, days: 90}\nholdout: 0.1\n", "holdout: Extra inputs are not permitted"),
        ("trigger: {type: lapse}\n", "trigger.lapse.days: Field required"),
        (
            "trigger: {type: holiday, dates: {Poland: '03-08'}}\n",
            "trigger.holiday.dates: Value error, 'Poland' is not an ISO-2",
        ),
        ("trigger: {type: holiday, dates: {PL: '02-30'}}\n", "trigger.holiday.dates: Value error, day is out of range"),
        (
            "trigger: {type: schedule, weekday: friday, month_day: 3}\n",
            "trigger.schedule: Value error, a schedule needs exactly one",
        ),
        (
            "trigger: {type: lapse, days: 90}\nsteps:\n  - {step: 1, offset_days: 5}\n  - {step: 2, offset_days: 1}\n",
            "(file): Value error, steps: offsets must not decrease",
        ),
        (
            "trigger: {type: lapse, days: 90}\nsteps:\n  - {step: 1}\n  - {step: 1}\n",
            "steps: step numbers must be unique",
        ),
        (
            "trigger: {type: lapse, days: 90}\noffer: {coupon_prefix: AB, percent_off: 95, valid_days: 3}\n",
            "offer.percent_off: Input should be less than or equal to 90",
        ),
        (
            "trigger: {type: lapse, days: 90}\nsteps:\n  - {step: 1, gift_categories: [books, books]}\n",
            "steps.0.gift_categories: Value error, a category is listed twice",
        ),
        (
            "trigger: {type: lapse, days: 90}\nsteps:\n  - {step: 1, gift_categories: [books, '']}\n",
            "steps.0.gift_categories.1: String should have at least 1 character",
        ),
    ],
)
def test_an_invalid_campaign_is_refused_naming_the_file_and_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, "come_back.yaml", HEAD + body)

    with pytest.raises(CatalogError) as err:
        load_campaign(path)

    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_a_transactional_campaign_may_not_carry_a_holdout(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "receipt.yaml",
        HEAD.replace("marketing", "transactional") + "trigger: {type: incident}\nholdout_share: 0.1\n",
    )

    with pytest.raises(CatalogError, match="a transactional campaign has no holdout"):
        load_campaign(path)


def test_a_transactional_campaign_carries_an_offer_campaign_wide_only(tmp_path: Path) -> None:
    base = HEAD.replace("marketing", "transactional") + "trigger: {type: incident}\n"
    apology = _write(
        tmp_path, "apology.yaml", base + "offer: {coupon_prefix: SORRY, percent_off: 20, valid_days: 30}\n"
    )
    per_step = _write(
        tmp_path,
        "per_step.yaml",
        base + "steps:\n  - {step: 1, offer: {coupon_prefix: SORRY, percent_off: 20, valid_days: 30}}\n",
    )

    assert load_campaign(apology).offer is not None
    with pytest.raises(CatalogError, match="offer is campaign-wide"):
        load_campaign(per_step)


def test_broken_yaml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "come_back.yaml", HEAD + "trigger: {type: lapse, days: 90\n")

    with pytest.raises(CatalogError, match=r"come_back\.yaml: not valid YAML"):
        load_campaign(path)


def test_a_campaign_file_saved_in_another_encoding_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "come_back.yaml"
    path.write_bytes((HEAD + "description: Скидка для вас\ntrigger: {type: birthday}\n").encode("cp1251"))

    with pytest.raises(CatalogError, match=r"come_back\.yaml"):
        load_campaign(path)


def test_the_catalog_skips_segments_and_disabled_campaigns_and_refuses_a_name_used_twice(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    _write(folder, "a_come_back.yaml", HEAD + "trigger: {type: lapse, days: 90}\n")
    _write(folder, "paused.yaml", HEAD.replace("come_back", "paused") + "trigger: {type: birthday}\nenabled: false\n")
    _write(
        folder,
        "updates.yaml",
        HEAD.replace("come_back", "updates") + "trigger: {type: order_status, statuses: [shipped]}\n",
    )
    _write(folder, "segments.yaml", "vip: {where: vip}\n")

    assert sorted(load_catalog(folder)) == ["come_back", "updates"]
    assert sorted(load_catalog(folder, include_disabled=True)) == ["come_back", "paused", "updates"]
    assert sorted(daily_campaigns(load_catalog(folder))) == ["come_back"]  # order updates run on their own

    _write(folder, "b_copy.yaml", HEAD + "trigger: {type: birthday}\n")
    with pytest.raises(CatalogError, match=r"b_copy\.yaml: name: 'come_back' is already used by another campaign file"):
        load_catalog(folder)


def test_the_holiday_reminders_take_their_gift_ideas_from_the_shops_gift_categories_and_promise_no_discount() -> None:
    from tasks.kernel.settings import PROJECT_ROOT

    catalog = load_catalog(PROJECT_ROOT / "campaigns")
    for name, categories in {"womens_day": ("beauty", "home", "books"), "mens_day": ("electronics", "books")}.items():
        reminder = catalog[name].steps[0]

        assert (reminder.variant, reminder.offset_days, reminder.gift_categories) == ("reminder", -3, categories)
        assert catalog[name].step_offer(reminder) is None  # gift ideas, no coupon: the copy promises none
        assert all(not s.gift_categories for s in catalog[name].steps[1:])  # greetings show the customer's picks


def test_every_gift_category_of_the_catalog_is_a_category_of_the_demo_shop() -> None:
    from tasks.demo.synth.catalog import CATEGORIES
    from tasks.kernel.settings import PROJECT_ROOT

    for campaign in load_catalog(PROJECT_ROOT / "campaigns").values():
        for step in campaign.steps:
            assert set(step.gift_categories) <= set(CATEGORIES), (campaign.name, step.step)


def test_each_campaign_of_the_catalog_is_filed_under_the_topic_a_customer_would_expect() -> None:
    from tasks.kernel.settings import PROJECT_ROOT

    topics = {n: c.mailing_topic.value for n, c in load_catalog(PROJECT_ROOT / "campaigns").items()}

    assert {n for n, t in topics.items() if t == "birthday_holidays"} == {"birthday", "mens_day", "womens_day"}
    assert {n for n, t in topics.items() if t == "personal_picks"} == {
        "abandoned_cart",
        "back_in_stock",
        "recommendations_digest",
        "replenishment",
    }
    assert {n for n, t in topics.items() if t == "service"} == {"order_status", "service_recovery"}
    assert topics["weekly_sale"] == topics["welcome"] == "news_and_sales"


def test_a_marketing_campaign_cannot_claim_the_service_topic(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "sneaky.yaml",
        "name: sneaky\nkind: marketing\nchannels: [email]\ntemplate: x\npriority: 1\n"
        "trigger: {type: lapse, days: 90}\ntopic: service\n",
    )

    with pytest.raises(CatalogError, match="service"):
        load_campaign(path)
