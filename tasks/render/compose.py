"""Compose messages: build each customer's template context and render a shard of the plan."""

from __future__ import annotations

import collections
import functools
import itertools
import weakref
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import jinja2
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from babel.dates import format_date
from babel.numbers import format_currency
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.consent.tokens import (
    SURVEY_SCORES,
    MessageKeys,
    Purpose,
    preferences_url,
    sign,
    survey_url,
    unsubscribe_url,
)
from tasks.kernel import progress
from tasks.kernel.enums import Channel, PointsBasis, Table, Topic
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.plan.campaigns import (
    BackInStockTrigger,
    BirthdayTrigger,
    Campaign,
    CartTrigger,
    HolidayTrigger,
    IncidentTrigger,
    OrderStatusTrigger,
    OrderTrigger,
    PointsTrigger,
    ReplenishmentTrigger,
    SurveyTrigger,
    load_catalog,
    survey_kind,
)
from tasks.plan.offers import coupon_code, validity
from tasks.plan.points import read_points_detail
from tasks.render.articles import ArticleHistory, ArticleWanted, load_articles, shows_article
from tasks.render.markdown_copy import EmailCopy, render_copy
from tasks.render.names import greeting_name
from tasks.render.outbox import message_stem, write_message
from tasks.render.templating import (
    Article,
    MessageContext,
    ProductPick,
    Rendered,
    make_environment,
    render_message,
    render_sms,
    template_locale,
)

PRODUCTS_SHOWN = 3  # picks shown in a message (the recommendations table keeps more)

RENDERED_COLUMNS = (
    "idempotency_key",
    "customer_id",
    "campaign",
    "channel",
    "kind",
    "locale",
    "to_address",
    "to_name",
    "subject",
    "html",
    "text",
    "unsubscribe_url",
    "html_file",
    "text_file",
    "send_at",
    "timezone",
    "country",
)


def _none_if_missing(value: object) -> object:
    return None if value is None or value is pd.NA or (isinstance(value, float) and value != value) else value


def build_context(
    row: dict[str, object],
    campaign: Campaign,
    settings: Settings,
    keys: MessageKeys,
    as_of: date,
    locale: str,
    products: Sequence[Mapping[str, object]] = (),
    article: Article | None = None,
) -> MessageContext:
    """Build the typed template context for one plan row; ``products`` are the customer's picks, best first;
    ``article``: the useful article the message carries (``tasks/render/articles.py``)."""
    first_name = _none_if_missing(row["first_name"])
    days = _none_if_missing(row["days_since_last_order"])
    step = next(s for s in campaign.steps if s.step == int(str(row.get("step", 1))))
    occurrence = date.fromisoformat(str(row.get("occurrence") or as_of.isoformat()))
    detail = _text_or_none(row.get("detail"))
    customer_id = str(row["customer_id"])
    name = str(first_name).strip() or None if first_name is not None else None
    top_category = _text_or_none(row.get("top_category"))
    context: dict[str, object] = {
        "first_name": name,
        "greeting_name": greeting_name(name, locale, settings.templates_dir),
        "locale": locale,
        "shop_name": settings.shop_name,
        "shop_url": settings.shop_url.rstrip("/"),  # templates append paths: {{ shop_url }}/cart
        # every message's link (and its List-Unsubscribe header) stops offers on the channel; order and service
        # messages go on. Its page offers, as a separate step, to stop everything.
        "unsubscribe_url": unsubscribe_url(
            keys.unsubscribe, settings.unsubscribe_base_url, customer_id, str(row["channel"]), Topic.MARKETING.value
        ),
        # the footer's "Mailing settings": topics, channels, frequency, birthday (``tasks/consent/preferences_page.py``)
        "preferences_url": preferences_url(
            keys.preferences, settings.preferences_base_url, customer_id, str(row["channel"]), locale
        ),
        "campaign": campaign.name,
        "step": step.step,
        "variant": step.variant,
        "interest": interest_group(top_category, settings.picks_exclusive_groups),
        "pet": interest_group(top_category, settings.pet_interests),
        "days_since_last_order": int(str(days)) if days is not None else None,
    }
    # the day the message goes out on the customer's clock (the plan's ``send_day``): distances count from it
    sent_on = _day_or_none(row.get("send_day")) or occurrence + timedelta(days=step.offset_days)
    offer = campaign.step_offer(step)
    # the plan says until when the coupon is valid, counted from the send day; no date: no coupon on this row
    # (a service message to someone who does not accept offers)
    valid_until = _day_or_none(row.get("coupon_valid_until")) if "coupon_valid_until" in row else None
    if offer is not None and "coupon_valid_until" not in row:
        valid_until = validity(campaign, offer, occurrence, sent_on)[1]
    if offer is not None and valid_until is not None:
        context["coupon_code"] = coupon_code(keys.coupon, campaign.name, offer, customer_id, occurrence.isoformat())
        context["percent_off"] = offer.percent_off
        # day and month in the locale's grammar ("4 декабря", "4 grudnia", "December 4"); no year for a
        # short-lived coupon, and no trailing "г." to collide with the sentence's full stop
        context["coupon_valid_until"] = _day_month(valid_until, locale)
    context |= _trigger_fields(
        campaign, (sent_on - occurrence).days, occurrence, detail, customer_id, settings, keys, locale
    )
    context["products"] = tuple(_product_pick(p, locale) for p in products[:PRODUCTS_SHOWN])
    context["weekday"] = _weekday(sent_on, locale)  # "пятница", "piątek", "Friday"
    context["article"] = article
    return MessageContext.model_validate(context)


def _day_or_none(value: object) -> date | None:
    value = _none_if_missing(value)
    return None if value is None else _day(str(value))


# Babel and pandas parse their patterns on every call; a shard repeats a few days, prices and locales thousands
# of times, so their formatted forms are kept (per process, bounded)
@functools.lru_cache(maxsize=4096)
def _day(text: str) -> date:
    return pd.Timestamp(text).date()


@functools.lru_cache(maxsize=4096)
def _day_month(day: date, locale: str) -> str:
    return format_date(day, format="d MMMM" if locale != "en" else "MMMM d", locale=locale)


@functools.lru_cache(maxsize=4096)
def _weekday(day: date, locale: str) -> str:
    return format_date(day, format="EEEE", locale=locale)


@functools.lru_cache(maxsize=65536)
def _price(amount: float, currency: str, locale: str) -> str:
    return format_currency(amount, currency, locale=locale)


def interest_group(top_category: str | None, groups: Sequence[str]) -> str | None:
    """The customer's interest group for content variants: ``cat`` for ``cat_food``, if it is a configured group."""
    if top_category is None:
        return None
    return next((g for g in groups if top_category == g or top_category.startswith(f"{g}_")), None)


def _trigger_fields(
    campaign: Campaign,
    since: int,
    occurrence: date,
    detail: str | None,
    customer_id: str,
    settings: Settings,
    keys: MessageKeys,
    locale: str,
) -> dict[str, object]:
    """What the trigger knows about this message: the occasion, the order, the incident, the points, the reorder.

    ``since``: days from the occurrence to the day the message goes out (a deferred reminder says the real
    distance to the occasion, not its step's).
    """
    trigger = campaign.trigger
    base = settings.shop_url.rstrip("/")
    if isinstance(trigger, BirthdayTrigger | HolidayTrigger):
        return {"occasion_date": _day_month(occurrence, locale), "days_to_occasion": -since}
    if isinstance(trigger, OrderStatusTrigger) and detail is not None:
        # detail: "<order_id> <status>" (late: the delay notice); the template branches on the status
        order_id, _, status = detail.rpartition(" ")
        order = quote(order_id, safe="")
        return {"order_id": order_id, "order_url": f"{base}/orders/{order}", "variant": status}
    if isinstance(trigger, OrderTrigger) and detail is not None:
        order = quote(detail, safe="")
        fields: dict[str, object] = {
            "order_id": detail,
            "order_url": f"{base}/orders/{order}",
            "review_url": f"{base}/orders/{order}/review",
        }
        if campaign.survey:  # eleven links, each signed over its own score
            fields["survey_urls"] = tuple(
                survey_url(keys.survey, settings.survey_base_url, customer_id, detail, score, locale)
                for score in SURVEY_SCORES
            )
        return fields
    if isinstance(trigger, SurveyTrigger) and detail is not None:  # a promoter's thanks: the order they rated
        order = quote(detail, safe="")
        return {
            "order_id": detail,
            "order_url": f"{base}/orders/{order}",
            "review_url": f"{base}/orders/{order}/review",
        }
    if isinstance(trigger, IncidentTrigger):
        return {"incident": detail}
    if isinstance(trigger, PointsTrigger) and detail is not None:
        return _points_fields(trigger, occurrence, detail, settings, locale)
    if isinstance(trigger, ReplenishmentTrigger) and detail is not None:
        products = ",".join(detail.split())
        token = sign(keys.reorder, Purpose.REORDER, customer_id, products)
        query = urlencode({"customer": customer_id, "products": products, "token": token})
        return {"reorder_url": f"{base}/reorder?{query}"}
    return {}


def _points_fields(
    trigger: PointsTrigger, occurrence: date, detail: str, settings: Settings, locale: str
) -> dict[str, object]:
    """A balance and the points that really lapse where the shop gives spending data; without it, what was
    earned: in the month before the statement, or on the day the lapsing points were earned."""
    points, basis = read_points_detail(detail)
    earned_only = basis is PointsBasis.EARNED
    if trigger.event == "expiry":
        fields: dict[str, object] = {"points_expiring": points, "points_expire_on": _day_month(occurrence, locale)}
        if earned_only:
            earned_on = occurrence - timedelta(days=settings.points_valid_days)
            fields["points_earned_on"] = format_date(earned_on, format="long", locale=locale)  # "5 марта 2025 г."
        return fields
    if earned_only:
        month = occurrence.replace(day=1) - timedelta(days=1)  # the statement on the 1st is of the month before
        return {"points_earned": points, "points_month": format_date(month, format="LLLL", locale=locale)}
    return {"points_balance": points}


def _product_pick(product: Mapping[str, object], locale: str) -> ProductPick:
    price, currency = _none_if_missing(product.get("price")), _none_if_missing(product.get("currency"))
    shown = _price(float(str(price)), str(currency), locale) if price is not None and currency is not None else None
    because = _none_if_missing(product.get("because"))
    return ProductPick(
        name=str(product["name"]),
        url=_text_or_none(product.get("url")),
        image_url=_text_or_none(product.get("image_url")),
        price=shown,
        reason=str(product["reason"]),
        because=None if because is None else str(because),
    )


def _text_or_none(value: object) -> str | None:
    value = _none_if_missing(value)
    return None if value is None else str(value)


PRODUCT_COLUMNS = ("product_id", "name", "category", "price", "currency", "in_stock", "url", "image_url", "created_at")
NEW_ARRIVAL_DAYS = 14  # a product created this recently is a new arrival


def load_products(paths: RunPaths) -> pd.DataFrame:
    """The day's catalog, indexed by product id: what a message shows of a product."""
    return pd.read_parquet(paths.table(Table.PRODUCTS), columns=list(PRODUCT_COLUMNS)).set_index("product_id")


def load_picks(
    paths: RunPaths, customer_ids: Sequence[str], catalog: pd.DataFrame | None = None, source: Path | None = None
) -> dict[str, list[dict[str, object]]]:
    """The day's picks of these customers with the products' names, links and prices, best first.

    ``source``: a shard's own picks (``split_picks``) instead of the day's file of every customer's.
    """
    source = source or paths.recommendations
    if not source.exists() or not customer_ids:
        return {}
    picks = pd.read_parquet(source, filters=[("customer_id", "in", list(customer_ids))])
    picks = picks.loc[picks["rank"] <= PRODUCTS_SHOWN]
    if picks.empty:
        return {}
    catalog = load_products(paths) if catalog is None else catalog
    shown = picks.join(catalog[["name", "price", "currency", "url", "image_url"]], on="product_id")
    shown["because"] = shown["reason_product_id"].map(catalog["name"])
    shown = shown.sort_values(["customer_id", "rank"], kind="stable")
    out: dict[str, list[dict[str, object]]] = {}
    for record in shown.to_dict("records"):
        out.setdefault(str(record["customer_id"]), []).append({str(k): v for k, v in record.items()})
    return out


def split_picks(paths: RunPaths, shards: Sequence[int], source: Path | None = None) -> None:
    """Each send shard's customers' shown picks in a file of its own (``paths.shard_picks``), for ``render_messages``.

    The day's picks file holds every customer's: a shard filtering it reads it whole (0.5 s at a million
    customers), and a million-customer day has hundreds of shards. Split here, it is read once.
    ``source``: a partition's picks file instead of the day's.
    """
    source = source or paths.recommendations
    if not source.exists() or not shards:
        return
    whose = pd.concat(
        [pd.read_parquet(paths.send_shard(n), columns=["customer_id"]).assign(shard=n) for n in shards],
        ignore_index=True,
    ).drop_duplicates()
    whose["customer_id"] = whose["customer_id"].astype(str)
    picks = pd.read_parquet(source, filters=[("rank", "<=", PRODUCTS_SHOWN)])
    picks["customer_id"] = picks["customer_id"].astype(str)
    split = dict(tuple(picks.merge(whose, on="customer_id").groupby("shard", sort=False)))
    schema = pq.read_schema(source).remove_metadata()  # an empty part keeps the columns' types
    for n in shards:  # a shard whose customers have no picks gets an empty file: it must not read the day's
        part = split[n].drop(columns="shard") if n in split else picks.iloc[:0]
        target = paths.shard_picks(n)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False), target)


# Each catalog's rows as plain dicts, made once per catalog (a pandas lookup per message was a sixth of a
# shard's rendering, for cart, due-again and back-in-stock messages)
# (keyed by the frame's id, with a weak reference that must still be that frame: a frame cannot be hashed)
_PRODUCT_ROWS: dict[int, tuple[weakref.ref[pd.DataFrame], dict[str, dict[str, object]]]] = {}
_SHOWN = ["name", "price", "currency", "url", "image_url"]


def products_by_id(catalog: pd.DataFrame, product_ids: Sequence[str], reason: str) -> list[dict[str, object]]:
    """Products of the catalog, in the order given, with a reason; unknown ids are left out."""
    known = _PRODUCT_ROWS.get(id(catalog))
    if known is not None and known[0]() is catalog:
        rows = known[1]
    else:
        shown = catalog[_SHOWN]
        rows = {
            str(product): {str(k): v for k, v in record.items()}
            for product, record in zip(shown.index, shown.to_dict("records"), strict=True)
        }
        key = id(catalog)
        _PRODUCT_ROWS[key] = (weakref.ref(catalog, lambda _: _PRODUCT_ROWS.pop(key, None)), rows)
    return [{**rows[p], "reason": reason} for p in product_ids if p in rows]


def new_arrivals(catalog: pd.DataFrame, as_of: date) -> list[dict[str, object]]:
    """The newest in-stock products created in the last ``NEW_ARRIVAL_DAYS`` days, newest first."""
    created = pd.to_datetime(catalog["created_at"], utc=True)
    since = pd.Timestamp(as_of - timedelta(days=NEW_ARRIVAL_DAYS), tz="UTC")
    until = pd.Timestamp(as_of + timedelta(days=1), tz="UTC")
    fresh = catalog.loc[((created >= since) & (created < until) & catalog["in_stock"].astype(bool)).to_numpy()]
    newest = fresh.assign(_at=created).sort_values("_at", ascending=False, kind="stable")
    return products_by_id(catalog, [str(p) for p in newest.index[:PRODUCTS_SHOWN]], "new")


def gift_ideas(catalog: pd.DataFrame, categories: Sequence[str]) -> list[dict[str, object]]:
    """In-stock products of the gift categories, newest first, the categories taking turns in the order given."""
    wanted = catalog["in_stock"].astype(bool).to_numpy() & catalog["category"].isin(list(categories)).to_numpy()
    chosen = catalog.loc[wanted]
    newest = chosen.assign(_at=pd.to_datetime(chosen["created_at"], utc=True)).sort_values(
        "_at", ascending=False, kind="stable"
    )
    queues = [newest.index[(newest["category"] == category).to_numpy()].tolist() for category in categories]
    turns = [p for turn in itertools.zip_longest(*queues) for p in turn if p is not None]
    return products_by_id(catalog, [str(p) for p in turns[:PRODUCTS_SHOWN]], "gift")


def message_products(
    campaign: Campaign,
    row: Mapping[str, object],
    picks: Mapping[str, Sequence[Mapping[str, object]]],
    catalog: pd.DataFrame | None,
    arrivals: Sequence[Mapping[str, object]],
    gifts: Mapping[tuple[str, ...], Sequence[Mapping[str, object]]] | None = None,
) -> Sequence[Mapping[str, object]]:
    """The products one message shows: the trigger's own (cart, due again), the step's gift ideas, else the
    campaign's choice. ``gifts``: gift ideas already chosen per tuple of categories (once a shard)."""
    detail = _text_or_none(row.get("detail"))
    own = {CartTrigger: "in_cart", ReplenishmentTrigger: "due_again", BackInStockTrigger: "back_in_stock"}
    reason = own.get(type(campaign.trigger))
    if reason is not None and detail and catalog is not None:
        return products_by_id(catalog, detail.split(), reason)
    step = next((s for s in campaign.steps if s.step == int(str(row.get("step", 1)))), None)
    if step is not None and step.gift_categories:
        # a gift to someone else: the shop's gift categories, never the customer's own picks
        if gifts is not None and step.gift_categories in gifts:
            return gifts[step.gift_categories]
        return gift_ideas(catalog, step.gift_categories) if catalog is not None else ()
    if campaign.products == "new_arrivals":
        return arrivals
    if campaign.products == "picks":
        return picks.get(str(row["customer_id"]), ())
    return ()


def render_shard(
    shard: pd.DataFrame,
    campaigns: dict[str, Campaign],
    env: jinja2.Environment,
    settings: Settings,
    keys: MessageKeys,
    as_of: date,
    outbox: Path,
    picks: Mapping[str, Sequence[Mapping[str, object]]] | None = None,
    catalog: pd.DataFrame | None = None,
    articles: ArticleHistory | None = None,
    copy: EmailCopy | None = None,
) -> pd.DataFrame:
    """Render every message of a plan shard, write a sample of it to the outbox, and return the rendered rows.

    The outbox is a preview, the returned rows are the record: the first ``settings.outbox_sample`` messages of
    each campaign, channel and language in the shard's order are written as files (0: every message); the rows
    of the others have empty ``html_file`` and ``text_file``.

    ``picks``: each customer's products (``load_picks``); a customer without any gets none.
    ``catalog``: the products (``load_products``), for cart, replenishment, new-arrival and gift blocks.
    ``articles``: the articles customers were given; with it, a message whose template shows an article
    carries the customer's next one, remembered there (without it: none).
    ``copy``: the words of an ad-hoc email written in its request, instead of the campaigns' templates
    (``tasks/render/markdown_copy.py``); each row's subject variant is its ``variant`` column.
    """
    picks = picks or {}
    arrivals = new_arrivals(catalog, as_of) if catalog is not None else []
    gifts = {
        s.gift_categories: gift_ideas(catalog, s.gift_categories)
        for c in campaigns.values()
        for s in c.steps
        if s.gift_categories and catalog is not None
    }
    out: list[dict[str, object]] = []
    sample, written = settings.outbox_sample, collections.Counter[tuple[str, str, str]]()
    rows = [{str(k): v for k, v in record.items()} for record in shard.to_dict("records")]
    given = _give_articles(rows, campaigns, env, settings, as_of, articles) if articles is not None else {}
    for row in rows:
        campaign = campaigns[str(row["campaign"])]
        locale = (
            template_locale(env, campaign.template, str(row["locale"] or "en"))
            if copy is None
            else copy.locale_for(str(row["locale"] or "en")) or next(iter(copy.locales()))
        )
        products = message_products(campaign, row, picks, catalog, arrivals, gifts)
        article = given.get(str(row["idempotency_key"]))
        context = build_context(row, campaign, settings, keys, as_of, locale, products, article)
        sms = row["channel"] == Channel.SMS.value
        # an SMS is its text alone: no subject, no HTML; the opt-out link is the unsubscribe URL in the text
        if copy is not None:
            rendered = render_copy(env, copy, locale, _text_or_none(row.get("variant")) or "", context)
        elif sms:
            rendered = Rendered(subject="", html="", text=render_sms(env, campaign.template, context))
        else:
            rendered = render_message(env, campaign.template, context)
        html_file = text_file = ""
        group = (campaign.name, str(row["channel"]), locale)
        if sample == 0 or written[group] < sample:  # the first ones of their campaign, channel and language
            written[group] += 1
            html_file, text_file = write_message(
                outbox,
                message_stem(campaign.name, str(row["customer_id"]), str(row["channel"])),
                None if sms else rendered.html,
                rendered.text,
            )
        out.append(
            {
                "idempotency_key": row["idempotency_key"],
                "customer_id": row["customer_id"],
                "campaign": campaign.name,
                "channel": row["channel"],
                "kind": row["kind"],
                "locale": locale,
                "to_address": row["phone"] if sms else row["email"],
                "to_name": context.first_name,
                "subject": rendered.subject,
                "html": rendered.html,
                "text": rendered.text,
                "unsubscribe_url": context.unsubscribe_url,
                "html_file": html_file,
                "text_file": text_file,
                "send_at": row["send_at"],
                "timezone": row["timezone"],
                "country": row["country"],
            }
        )
    return pd.DataFrame(out, columns=list(RENDERED_COLUMNS))


def _give_articles(
    rows: Sequence[Mapping[str, object]],
    campaigns: Mapping[str, Campaign],
    env: jinja2.Environment,
    settings: Settings,
    as_of: date,
    history: ArticleHistory,
) -> dict[str, Article]:
    """The article of each message whose template shows one, by idempotency key: chosen for the whole shard at
    once and remembered (a message for which every fitting article was given gets none)."""
    shows: dict[tuple[str, str, str], bool] = {}
    wanted: list[ArticleWanted] = []
    for row in rows:
        template = campaigns[str(row["campaign"])].template
        locale = template_locale(env, template, str(row["locale"] or "en"))
        where = (template, locale, str(row["channel"]))
        if where not in shows:
            shows[where] = shows_article(env, *where)
        if shows[where]:
            interest = interest_group(_text_or_none(row.get("top_category")), settings.picks_exclusive_groups)
            day = _day_or_none(row.get("send_day")) or as_of  # an article "from" a day is not sent before it
            wanted.append(ArticleWanted(str(row["idempotency_key"]), str(row["customer_id"]), locale, interest, day))
    if not wanted:
        return {}
    pool = load_articles(settings.templates_dir, settings.picks_exclusive_groups)
    return {key: article.shown for key, article in history.give(pool, wanted).items()}


_Stamp = tuple[tuple[str, int, int], ...]
_environments: dict[Path, tuple[_Stamp, jinja2.Environment]] = {}
_catalogs: dict[Path, tuple[_Stamp, dict[str, Campaign]]] = {}


def _stamp(folder: Path) -> _Stamp:
    """Every file of a folder with its time and size: it changes when a file is added, removed or edited."""
    stats = ((p, p.stat()) for p in folder.rglob("*") if p.is_file())
    return tuple(sorted((str(p), s.st_mtime_ns, s.st_size) for p, s in stats))


def _environment(templates_dir: Path) -> jinja2.Environment:
    """The templates' environment, kept by the process while no file of the folder changes.

    Compiling every template costs more than rendering a small shard, and checking each template's file
    before each message a tenth of the rendering; the folder is checked once per shard instead.
    """
    stamp = _stamp(templates_dir)
    kept = _environments.get(templates_dir)
    if kept is None or kept[0] != stamp:
        kept = _environments[templates_dir] = (stamp, make_environment(templates_dir, auto_reload=False))
    return kept[1]


def _campaigns(campaigns_dir: Path) -> dict[str, Campaign]:
    """The campaign catalog, kept by the process while no file of the folder changes (reading its YAML for
    every shard was a twentieth of rendering it)."""
    stamp = _stamp(campaigns_dir)
    kept = _catalogs.get(campaigns_dir)
    if kept is None or kept[0] != stamp:
        kept = _catalogs[campaigns_dir] = (stamp, load_catalog(campaigns_dir))
    return dict(kept[1])


@task(cache_policy=NO_CACHE)
def render_messages(paths: RunPaths, shard: int, as_of: date, settings: Settings) -> int:
    """Render one shard of the plan into messages and the outbox; return how many."""
    campaigns = survey_kind(_campaigns(settings.campaigns_dir), settings.survey_is_service)
    env = _environment(settings.templates_dir)
    progress.advance("render", 0, None)
    plan = pd.read_parquet(paths.send_shard(shard))
    catalog = load_products(paths)
    own = paths.shard_picks(shard)
    picks = load_picks(paths, plan["customer_id"].astype(str).unique().tolist(), catalog, own if own.exists() else None)
    keys = MessageKeys.for_settings(settings)
    history = ArticleHistory.for_settings(settings)
    rendered = render_shard(plan, campaigns, env, settings, keys, as_of, paths.outbox, picks, catalog, history)
    target = paths.rendered_shard(shard)
    target.parent.mkdir(parents=True, exist_ok=True)
    rendered.to_parquet(target, index=False)
    own.unlink(missing_ok=True)
    progress.advance("render", len(rendered))
    return len(rendered)
