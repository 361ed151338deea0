"""Compose messages: build each customer's template context and render a shard of the plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

import jinja2
import pandas as pd
from babel.dates import format_date
from babel.numbers import format_currency
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import progress
from tasks.campaigns import Campaign, load_catalog
from tasks.enums import Channel, Table
from tasks.outbox import message_stem, write_message
from tasks.paths import RunPaths
from tasks.render import (
    MessageContext,
    ProductPick,
    Rendered,
    make_environment,
    render_message,
    render_sms,
    template_locale,
)
from tasks.settings import Settings
from tasks.tokens import coupon_code, signing_key, unsubscribe_url

# Columns of the plan shard that composing needs (joined from customers and profile).
SHARD_COLUMNS = (
    "idempotency_key",
    "customer_id",
    "campaign",
    "channel",
    "kind",
    "email",
    "phone",
    "first_name",
    "locale",
    "days_since_last_order",
    "send_at",
    "timezone",
    "country",
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
    key: bytes,
    as_of: date,
    locale: str,
    products: Sequence[Mapping[str, object]] = (),
) -> MessageContext:
    """Build the typed template context for one plan row; ``products`` are the customer's picks, best first."""
    first_name = _none_if_missing(row["first_name"])
    days = _none_if_missing(row["days_since_last_order"])
    context: dict[str, object] = {
        "first_name": str(first_name).strip() or None if first_name is not None else None,
        "locale": locale,
        "shop_name": settings.shop_name,
        "shop_url": settings.shop_url,
        "unsubscribe_url": unsubscribe_url(
            key, settings.unsubscribe_base_url, str(row["customer_id"]), str(row["channel"])
        ),
        "days_since_last_order": int(str(days)) if days is not None else None,
    }
    if campaign.offer is not None:
        context["coupon_code"] = coupon_code(key, campaign.offer.coupon_prefix, str(row["idempotency_key"]))
        context["percent_off"] = campaign.offer.percent_off
        valid_until = as_of + timedelta(days=campaign.offer.valid_days)
        # day and month in the locale's grammar ("4 декабря", "4 grudnia", "December 4"); no year for a
        # two-week coupon, and no trailing "г." to collide with the sentence's full stop
        context["coupon_valid_until"] = format_date(
            valid_until, format="d MMMM" if locale != "en" else "MMMM d", locale=locale
        )
    context["products"] = tuple(_product_pick(p, locale) for p in products[:PRODUCTS_SHOWN])
    return MessageContext.model_validate(context)


def _product_pick(product: Mapping[str, object], locale: str) -> ProductPick:
    price, currency = _none_if_missing(product.get("price")), _none_if_missing(product.get("currency"))
    shown = (
        format_currency(float(str(price)), str(currency), locale=locale)
        if price is not None and currency is not None
        else None
    )
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


def load_picks(paths: RunPaths, customer_ids: Sequence[str]) -> dict[str, list[dict[str, object]]]:
    """The day's picks of these customers with the products' names, links and prices, best first."""
    if not paths.recommendations.exists() or not customer_ids:
        return {}
    picks = pd.read_parquet(paths.recommendations, filters=[("customer_id", "in", list(customer_ids))])
    picks = picks.loc[picks["rank"] <= PRODUCTS_SHOWN]
    if picks.empty:
        return {}
    catalog = pd.read_parquet(
        paths.table(Table.PRODUCTS), columns=["product_id", "name", "price", "currency", "url", "image_url"]
    ).set_index("product_id")
    shown = picks.join(catalog, on="product_id")
    shown["because"] = shown["reason_product_id"].map(catalog["name"])
    shown = shown.sort_values(["customer_id", "rank"], kind="stable")
    out: dict[str, list[dict[str, object]]] = {}
    for record in shown.to_dict("records"):
        out.setdefault(str(record["customer_id"]), []).append({str(k): v for k, v in record.items()})
    return out


def render_shard(
    shard: pd.DataFrame,
    campaigns: dict[str, Campaign],
    env: jinja2.Environment,
    settings: Settings,
    key: bytes,
    as_of: date,
    outbox: Path,
    picks: Mapping[str, Sequence[Mapping[str, object]]] | None = None,
) -> pd.DataFrame:
    """Render every message of a plan shard, write it to the outbox, and return the rendered rows.

    ``picks``: each customer's products (``load_picks``); a customer without any gets none.
    """
    picks = picks or {}
    out: list[dict[str, object]] = []
    for record in shard.to_dict("records"):
        row = {str(k): v for k, v in record.items()}
        campaign = campaigns[str(row["campaign"])]
        locale = template_locale(env, campaign.template, str(row["locale"] or "en"))
        products = picks.get(str(row["customer_id"]), ())
        context = build_context(row, campaign, settings, key, as_of, locale, products)
        sms = row["channel"] == Channel.SMS.value
        # an SMS is its text alone: no subject, no HTML; the opt-out link is the unsubscribe URL in the text
        rendered = (
            Rendered(subject="", html="", text=render_sms(env, campaign.template, context))
            if sms
            else render_message(env, campaign.template, context)
        )
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


@task(cache_policy=NO_CACHE)
def render_messages(paths: RunPaths, shard: int, as_of: date, settings: Settings) -> int:
    """Render one shard of the plan into messages and the outbox; return how many."""
    campaigns = load_catalog(settings.campaigns_dir)
    env = make_environment(settings.templates_dir)
    progress.advance("render", 0, None)
    plan = pd.read_parquet(paths.send_shard(shard))
    picks = load_picks(paths, plan["customer_id"].astype(str).unique().tolist())
    rendered = render_shard(plan, campaigns, env, settings, signing_key(settings), as_of, paths.outbox, picks)
    target = paths.rendered_shard(shard)
    target.parent.mkdir(parents=True, exist_ok=True)
    rendered.to_parquet(target, index=False)
    progress.advance("render", len(rendered))
    return len(rendered)
