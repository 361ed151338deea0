"""Composing messages: each plan row's template context, the products it shows, and a rendered shard."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest

from tasks.consent.tokens import MessageKeys, parse_unsubscribe, sign
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.plan.campaigns import load_catalog
from tasks.render.compose import (
    RENDERED_COLUMNS,
    _campaigns,
    build_context,
    gift_ideas,
    interest_group,
    load_picks,
    message_products,
    new_arrivals,
    render_shard,
)
from tasks.render.templating import make_environment, render_message

CATALOG = load_catalog(PROJECT_ROOT / "campaigns")
KEYS = MessageKeys.from_secret(b"compose-test-key-0123456789")
AS_OF = date(2026, 4, 13)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, shop_name="Kot & Pies", shop_url="https://shop.example.com/")


def _row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "idempotency_key": "k1",
        "customer_id": "C1",
        "campaign": "birthday",
        "channel": "email",
        "kind": "marketing",
        "email": "c1@example.com",
        "phone": "+48512345678",
        "first_name": "Ola",
        "locale": "pl",
        "days_since_last_order": 10,
        "top_category": "cat_food",
        "step": 1,
        "occurrence": "2026-04-20",
        "detail": None,
        "send_at": pd.Timestamp("2026-04-13 08:00", tz="UTC"),
        "timezone": "Europe/Warsaw",
        "country": "PL",
    }
    return row | changes


CATALOG_PRODUCTS = pd.DataFrame(
    {
        "name": ["Salmon 2 kg", "Feather wand", "Dog ball", "Old lamp", "Tomorrow's toy"],
        "category": ["cat_food", "cat_toys", "dog_toys", "home", "cat_toys"],
        "price": [12.5, 4.0, 3.0, 20.0, 5.0],
        "currency": ["EUR"] * 5,
        "in_stock": [True, True, False, True, True],
        "url": ["https://shop.example.com/p/1", None, None, None, None],
        "image_url": [None] * 5,
        "created_at": pd.to_datetime(
            ["2026-04-10 09:00", "2026-04-12 18:00", "2026-04-11 09:00", "2026-01-01 09:00", "2026-04-14 09:00"],
            utc=True,
        ),
    },
    index=pd.Index(["P1", "P2", "P3", "P4", "P5"], name="product_id"),
)


def test_the_interest_group_is_a_configured_prefix_not_any_category_starting_with_it() -> None:
    groups = ("cat", "dog")

    assert interest_group("cat_food", groups) == "cat"
    assert interest_group("dog", groups) == "dog"
    assert interest_group("catalog_sale", groups) is None
    assert interest_group(None, groups) is None


def test_a_birthday_message_a_week_early_knows_the_day_the_coupon_and_its_last_day(settings: Settings) -> None:
    context = build_context(_row(), CATALOG["birthday"], settings, KEYS, AS_OF, "pl")

    assert (context.variant, context.days_to_occasion, context.occasion_date) == ("week_before", 7, "20 kwietnia")
    assert context.coupon_code is not None and re.fullmatch(r"BDAY-[A-Z0-9]{10}", context.coupon_code)
    assert context.percent_off == 20
    assert context.coupon_valid_until == "23 kwietnia"  # the last step, three days after the birthday
    assert context.interest == "cat"
    assert context.shop_url == "https://shop.example.com"  # templates append their own paths
    unsubscribe = parse_qs(urlsplit(context.unsubscribe_url).query)
    assert parse_unsubscribe(KEYS.unsubscribe, {k: v[0] for k, v in unsubscribe.items()}).customer_id == "C1"


def test_a_blank_first_name_and_an_unknown_last_order_are_left_out_not_shown_as_text(settings: Settings) -> None:
    row = _row(first_name="   ", days_since_last_order=float("nan"), top_category=pd.NA)

    context = build_context(row, CATALOG["birthday"], settings, KEYS, AS_OF, "en")

    assert (context.first_name, context.days_since_last_order, context.interest) == (None, None, None)


def test_a_replenishment_reminder_carries_a_signed_reorder_link_for_its_products(settings: Settings) -> None:
    row = _row(campaign="replenishment", occurrence="2026-04-15", detail="P1 P9")

    context = build_context(row, CATALOG["replenishment"], settings, KEYS, AS_OF, "en")

    assert context.reorder_url is not None
    link = urlsplit(context.reorder_url)
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert f"{link.scheme}://{link.netloc}{link.path}" == "https://shop.example.com/reorder"
    assert query["customer"] == "C1" and query["products"] == "P1,P9"
    assert query["token"] == sign(KEYS.reorder, "reorder", "C1", "P1,P9")
    assert query["token"] != sign(KEYS.coupon, "reorder", "C1", "P1,P9")  # the reorder key, no other
    assert context.coupon_code is None  # the campaign has no offer


def test_an_order_update_links_the_order_safely_and_branches_on_its_status(settings: Settings) -> None:
    row = _row(campaign="order_status", detail="2026/04 #17 shipped", kind="transactional")

    context = build_context(row, CATALOG["order_status"], settings, KEYS, AS_OF, "en")

    assert context.order_id == "2026/04 #17"
    assert context.order_url == "https://shop.example.com/orders/2026%2F04%20%2317"
    assert context.variant == "shipped"


def test_new_arrivals_are_the_newest_in_stock_products_of_the_last_two_weeks_up_to_the_day() -> None:
    arrivals = new_arrivals(CATALOG_PRODUCTS, AS_OF)

    # P3 is out of stock, P4 is three months old, P5 arrives tomorrow
    assert [p["name"] for p in arrivals] == ["Feather wand", "Salmon 2 kg"]
    assert {p["reason"] for p in arrivals} == {"new"}


def test_a_cart_message_shows_the_carts_products_in_order_and_a_digest_the_customers_picks() -> None:
    cart_row = _row(campaign="abandoned_cart", detail="P2 P404 P1")
    picks = {"C1": [{"name": "Dog ball", "reason": "popular"}]}

    in_cart = message_products(CATALOG["abandoned_cart"], cart_row, picks, CATALOG_PRODUCTS, [])
    digest = message_products(CATALOG["win_back"], _row(campaign="win_back"), picks, CATALOG_PRODUCTS, [])
    statement = message_products(CATALOG["points_statement"], _row(), picks, CATALOG_PRODUCTS, [])

    assert [(p["name"], p["reason"]) for p in in_cart] == [("Feather wand", "in_cart"), ("Salmon 2 kg", "in_cart")]
    assert digest == picks["C1"]
    assert list(statement) == []


def test_a_shard_renders_an_email_and_an_sms_with_one_coupon_and_writes_the_outbox(
    tmp_path: Path, settings: Settings
) -> None:
    shard = pd.DataFrame([_row(channel="sms", idempotency_key="k-sms"), _row(locale="de", idempotency_key="k-email")])
    env = make_environment(PROJECT_ROOT / "templates")

    rendered = render_shard(shard, CATALOG, env, settings, KEYS, AS_OF, tmp_path / "outbox")

    assert tuple(rendered.columns) == RENDERED_COLUMNS
    sms, email = rendered.set_index("channel").loc["sms"], rendered.set_index("channel").loc["email"]
    assert (sms["to_address"], sms["subject"], sms["html"], sms["html_file"]) == ("+48512345678", "", "", "")
    assert sms["locale"] == "pl" and "Kot & Pies" in sms["text"]
    assert email["locale"] == "en"  # no German template: English
    assert email["to_address"] == "c1@example.com" and email["subject"].startswith("Ola, a birthday gift")
    codes = [re.findall(r"BDAY-[A-Z0-9]{10}", str(text)) for text in (sms["text"], email["text"])]
    assert codes[0] and set(codes[0]) == set(codes[1])  # one code per customer and occurrence, whatever the channel
    assert (tmp_path / "outbox" / "birthday" / "C1-sms.txt").read_text(encoding="utf-8") == sms["text"]
    assert (tmp_path / "outbox" / email["html_file"]).exists()


def test_a_shard_writes_the_first_messages_of_each_campaign_channel_and_language_and_keeps_every_one(
    tmp_path: Path, settings: Settings
) -> None:
    # three Polish birthday emails, two Polish SMS and one English email; two of each written
    rows = [_row(customer_id=f"P{n}", idempotency_key=f"pl-{n}") for n in range(3)]
    rows += [_row(customer_id=f"S{n}", idempotency_key=f"sms-{n}", channel="sms") for n in range(2)]
    rows += [_row(customer_id="E0", idempotency_key="en-0", locale="en")]
    env = make_environment(PROJECT_ROOT / "templates")
    sampled = settings.model_copy(update={"outbox_sample": 2})

    rendered = render_shard(pd.DataFrame(rows), CATALOG, env, sampled, KEYS, AS_OF, tmp_path / "outbox")

    assert len(rendered) == 6 and rendered["text"].str.len().gt(0).all()  # the record holds every message
    files = sorted(p.name for p in (tmp_path / "outbox" / "birthday").iterdir())
    assert files == [
        "E0-email.html", "E0-email.txt", "P0-email.html", "P0-email.txt", "P1-email.html", "P1-email.txt",
        "S0-sms.txt", "S1-sms.txt",
    ]  # fmt: skip
    third = rendered.set_index("idempotency_key").loc["pl-2"]
    assert (third["html_file"], third["text_file"]) == ("", "")


def test_the_campaigns_kept_between_shards_are_read_again_when_their_folder_changes(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    birthday = folder / "birthday.yaml"
    birthday.write_text((PROJECT_ROOT / "campaigns" / "birthday.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    first = _campaigns(folder)

    birthday.write_text(birthday.read_text(encoding="utf-8") + "enabled: false\n", encoding="utf-8")
    (folder / "win_back.yaml").write_text(
        (PROJECT_ROOT / "campaigns" / "win_back.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    second = _campaigns(folder)

    assert list(first) == ["birthday"] and list(second) == ["win_back"]


def test_an_outbox_sample_of_zero_writes_every_message(tmp_path: Path, settings: Settings) -> None:
    rows = [_row(customer_id=f"P{n}", idempotency_key=f"pl-{n}") for n in range(3)]
    env = make_environment(PROJECT_ROOT / "templates")
    every = settings.model_copy(update={"outbox_sample": 0})

    rendered = render_shard(pd.DataFrame(rows), CATALOG, env, every, KEYS, AS_OF, tmp_path / "outbox")

    assert rendered["text_file"].tolist() == [f"birthday/P{n}-email.txt" for n in range(3)]
    assert all((tmp_path / "outbox" / f).exists() for f in rendered["html_file"])


def test_picks_are_read_for_the_customers_asked_best_three_first_with_the_reasons_product_name(
    tmp_path: Path,
) -> None:
    from tasks.kernel.paths import RunPaths

    paths = RunPaths(tmp_path / "run")
    paths.recommendations.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "customer_id": ["C1"] * 4 + ["C2"],
            "rank": [2, 1, 3, 4, 1],
            "product_id": ["P2", "P1", "P4", "P3", "P1"],
            "score": [0.5, 0.9, 0.1, 0.05, 0.7],
            "reason": ["because_of", "due_again", "popular", "popular", "popular"],
            "reason_product_id": ["P1", "P1", None, None, None],
        }
    ).to_parquet(paths.recommendations, index=False)

    picks = load_picks(paths, ["C1"], CATALOG_PRODUCTS)

    assert list(picks) == ["C1"]
    shown = [(p["name"], p["reason"], p["because"] if isinstance(p["because"], str) else None) for p in picks["C1"]]
    assert shown == [
        ("Salmon 2 kg", "due_again", "Salmon 2 kg"),
        ("Feather wand", "because_of", "Salmon 2 kg"),
        ("Old lamp", "popular", None),  # rank 4 (the dog ball) is not shown: three products a message
    ]
    assert load_picks(RunPaths(tmp_path / "no-run"), ["C1"], CATALOG_PRODUCTS) == {}


def test_each_shard_gets_its_customers_shown_picks_the_same_as_the_days_file_gives(tmp_path: Path) -> None:
    from tasks.kernel.paths import RunPaths
    from tasks.render.compose import split_picks

    paths = RunPaths(tmp_path / "run")
    paths.recommendations.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "customer_id": ["C1"] * 4 + ["C2", "C3"],
            "rank": [2, 1, 3, 4, 1, 1],
            "product_id": ["P2", "P1", "P4", "P3", "P1", "P2"],
            "score": [0.5, 0.9, 0.1, 0.05, 0.7, 0.3],
            "reason": ["because_of", "due_again", "popular", "popular", "popular", "popular"],
            "reason_product_id": ["P1", "P1", None, None, None, None],
        }
    ).to_parquet(paths.recommendations, index=False)
    paths.send_shard(1).parent.mkdir(parents=True)
    # C1 has an email in shard 1 and an SMS in shard 2; C4 (shard 3) has no picks
    for number, customers in ((1, ["C1", "C2"]), (2, ["C1"]), (3, ["C4"])):
        pd.DataFrame({"customer_id": customers}).to_parquet(paths.send_shard(number), index=False)

    split_picks(paths, [1, 2, 3])

    day = load_picks(paths, ["C1", "C2"], CATALOG_PRODUCTS)
    assert load_picks(paths, ["C1", "C2"], CATALOG_PRODUCTS, paths.shard_picks(1)) == day
    assert load_picks(paths, ["C1"], CATALOG_PRODUCTS, paths.shard_picks(2)) == {"C1": day["C1"]}
    assert len(pd.read_parquet(paths.shard_picks(2))) == 3  # the three a message shows, not the fourth
    assert paths.shard_picks(3).exists()  # empty, so the shard does not fall back to reading every customer's
    assert load_picks(paths, ["C4"], CATALOG_PRODUCTS, paths.shard_picks(3)) == {}


def test_a_reminder_that_goes_a_day_late_says_the_real_distance_to_the_occasion(settings: Settings) -> None:
    # the 3-days-before reminder (step 2) deferred to two days before the birthday
    row = _row(step=2, send_day=pd.Timestamp("2026-04-18"), coupon_valid_until="2026-04-23")

    context = build_context(row, CATALOG["birthday"], settings, KEYS, AS_OF, "pl")

    assert context.days_to_occasion == 2
    assert context.coupon_valid_until == "23 kwietnia"


def test_a_row_the_plan_gave_no_coupon_carries_none(settings: Settings) -> None:
    # a service apology to someone who does not accept offers: the plan left coupon_valid_until empty
    row = _row(campaign="service_recovery", kind="transactional", occurrence="2026-04-12", detail="late_delivery")
    with_coupon = build_context(
        row | {"coupon_valid_until": "2026-05-12"}, CATALOG["service_recovery"], settings, KEYS, AS_OF, "pl"
    )
    without = build_context(
        row | {"coupon_valid_until": None}, CATALOG["service_recovery"], settings, KEYS, AS_OF, "pl"
    )

    assert with_coupon.coupon_code and with_coupon.coupon_valid_until == "12 maja"
    assert without.coupon_code is None and without.percent_off is None and without.coupon_valid_until is None


# --- personal means true: pet wording for pet owners only; gift ideas from the shop's gift categories ---------


def _render(row: dict[str, object], settings: Settings, products: tuple[dict[str, object], ...] = ()) -> str:
    campaign = CATALOG[str(row["campaign"])]
    context = build_context(row, campaign, settings, KEYS, AS_OF, str(row["locale"]), products)
    message = render_message(make_environment(PROJECT_ROOT / "templates"), campaign.template, context)
    return f"{message.subject}\n{message.text}"


def test_a_customer_is_a_pet_owner_only_when_their_top_category_is_one_the_shop_counts_as_a_pet(
    settings: Settings,
) -> None:
    cat_owner = build_context(_row(), CATALOG["birthday"], settings, KEYS, AS_OF, "pl")
    no_pet = build_context(_row(top_category="garden"), CATALOG["birthday"], settings, KEYS, AS_OF, "pl")
    horses_only = settings.model_copy(update={"pet_interests": ["horse"]})
    not_counted = build_context(_row(), CATALOG["birthday"], horses_only, KEYS, AS_OF, "pl")

    assert (cat_owner.pet, no_pet.pet, not_counted.pet) == ("cat", None, None)
    assert no_pet.interest is None and not_counted.interest == "cat"  # the interest still picks content


def test_a_late_delivery_apology_mentions_a_waiting_pet_only_to_a_pet_owner(settings: Settings) -> None:
    late = _row(campaign="service_recovery", kind="transactional", locale="ru", detail="late_delivery")

    assert "питомец" in _render(late, settings)
    without = _render(late | {"top_category": "kitchen"}, settings)
    assert "питом" not in without
    assert "Мы знаем, как неприятно ждать, и искренне просим прощения." in without


def test_a_birthday_and_a_thank_you_speak_of_pets_only_to_pet_owners(settings: Settings) -> None:
    birthday = _row(locale="en")
    thanks = _row(campaign="thank_you", locale="en", detail="100045", occurrence="2026-04-10")

    assert "spoil your cat" in _render(birthday, settings)
    assert "pet owners" in _render(thanks, settings)
    for text in (
        _render(birthday | {"top_category": "books"}, settings),
        _render(thanks | {"top_category": None}, settings),
    ):
        assert not re.search(r"\b(pets?|cats?|dogs?)\b", text, flags=re.IGNORECASE), text
    assert "spoil yourself a little" in _render(birthday | {"top_category": "books"}, settings)


def test_a_polish_greeting_uses_the_vocative_and_greets_an_unknown_name_without_one(settings: Settings) -> None:
    known = build_context(_row(first_name="Anna"), CATALOG["birthday"], settings, KEYS, AS_OF, "pl")
    unknown = _row(first_name="Xenofonta")

    assert (known.first_name, known.greeting_name) == ("Anna", "Anno")
    assert _render(_row(first_name="Anna"), settings).splitlines()[1] == "Cześć, Anno!"
    text = _render(unknown, settings)
    assert text.splitlines()[1] == "Dzień dobry!" and "Xenofont" not in text
    assert text.startswith("Mamy dla Ciebie prezent urodzinowy")  # the subject, without the name


GIFT_SHOP = pd.DataFrame(
    {
        "name": [
            "Pruning shears",
            "Hand cream",
            "Scented candle",
            "Old vase",
            "Sold-out lipstick",
            "Novel",
            "Cat tree",
        ],
        "category": ["garden", "beauty", "home", "home", "beauty", "books", "cat_toys"],
        "price": [15.0, 9.9, 14.0, 30.0, 12.0, 18.5, 99.0],
        "currency": ["EUR"] * 7,
        "in_stock": [True, True, True, True, False, True, True],
        "url": [None] * 7,
        "image_url": [None] * 7,
        "created_at": pd.to_datetime(
            ["2026-02-01", "2025-11-20", "2026-01-10", "2024-05-01", "2026-02-20", "2025-12-01", "2026-02-25"], utc=True
        ),
    },
    index=pd.Index(["G1", "G2", "G3", "G4", "G5", "G6", "G7"], name="product_id"),
)


def test_gift_ideas_are_in_stock_products_of_the_gift_categories_newest_first_taking_turns() -> None:
    ideas = gift_ideas(GIFT_SHOP, ("beauty", "home", "books"))

    # the sold-out lipstick is left out; home's newer candle comes before its old vase
    assert [p["name"] for p in ideas] == ["Hand cream", "Scented candle", "Novel"]
    assert {p["reason"] for p in ideas} == {"gift"}
    assert [p["name"] for p in gift_ideas(GIFT_SHOP, ("home",))] == ["Scented candle", "Old vase"]
    assert gift_ideas(GIFT_SHOP, ("jewellery",)) == []


def test_the_8_march_reminder_shows_gift_ideas_from_the_gift_categories_never_the_mans_own_picks(
    tmp_path: Path, settings: Settings
) -> None:
    # a man who gardens and has a cat: his own picks are pruning shears and a cat tree
    row = _row(
        campaign="womens_day",
        step=1,
        locale="en",
        first_name="Tom",
        occurrence="2026-03-08",
        send_day=pd.Timestamp("2026-03-05"),
        top_category="garden",
    )
    picks = {"C1": [{"name": "Pruning shears", "reason": "popular"}, {"name": "Cat tree", "reason": "popular"}]}

    shown = message_products(CATALOG["womens_day"], row, picks, GIFT_SHOP, [])
    rendered = render_shard(
        pd.DataFrame([row]),
        CATALOG,
        make_environment(PROJECT_ROOT / "templates"),
        settings,
        KEYS,
        date(2026, 3, 5),
        tmp_path / "outbox",
        picks,
        GIFT_SHOP,
    ).iloc[0]

    assert {GIFT_SHOP.loc[GIFT_SHOP["name"] == p["name"], "category"].iloc[0] for p in shown} <= {
        "beauty",
        "home",
        "books",
    }
    assert "Gift ideas:\n- Hand cream, €9.90\n- Scented candle, €14.00\n- Novel, €18.50" in rendered["text"]
    assert "Pruning shears" not in rendered["text"] and "Cat tree" not in rendered["text"]
    assert rendered["subject"] == "Tom, Women's Day is in 3 days: gift ideas for her"
    assert "%" not in rendered["subject"] + rendered["text"]  # the reminder carries no coupon and promises none


def test_a_reminder_with_no_gift_in_stock_promises_no_gift_ideas(settings: Settings) -> None:
    row = _row(campaign="womens_day", step=1, locale="en", first_name="Tom", occurrence="2026-03-08")

    text = _render(row, settings, products=())

    assert "Women's Day is in 3 days: time to choose a gift" in text
    assert "Gift ideas" not in text


def test_a_points_statement_shows_the_balance_or_without_spending_data_the_points_earned_in_the_month_before(
    settings: Settings,
) -> None:
    row = _row(campaign="points_statement", occurrence="2026-04-01", detail="1250 balance", locale="ru")
    known = build_context(row, CATALOG["points_statement"], settings, KEYS, AS_OF, "ru")
    earned = build_context(row | {"detail": "120 earned"}, CATALOG["points_statement"], settings, KEYS, AS_OF, "ru")

    assert (known.points_balance, known.points_earned, known.points_month) == (1250, None, None)
    assert (earned.points_balance, earned.points_earned, earned.points_month) == (None, 120, "март")


def test_an_expiry_reminder_without_spending_data_names_the_day_the_lapsing_points_were_earned(
    settings: Settings,
) -> None:
    row = _row(campaign="points_expiry", occurrence="2026-04-27", detail="300 earned")

    earned = build_context(
        row, CATALOG["points_expiry"], settings.model_copy(update={"points_valid_days": 365}), KEYS, AS_OF, "pl"
    )
    known = build_context(row | {"detail": "40 balance"}, CATALOG["points_expiry"], settings, KEYS, AS_OF, "pl")

    assert (earned.points_expiring, earned.points_expire_on, earned.points_earned_on) == (
        300,
        "27 kwietnia",
        "27 kwietnia 2025",
    )
    assert (known.points_expiring, known.points_earned_on) == (40, None)
