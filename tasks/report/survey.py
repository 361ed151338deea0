"""The weekly survey report: NPS by week, by product category and by delivery lateness, and what comments talk about.

NPS = % promoters (9-10) - % detractors (0-6) of the answers, from -100 to 100 (passives, 7-8, count in the
total only). An answer belongs to the ISO week of its UTC time. Of the week asked for (``--week 2024-W22``):

* by week - that week and the seven before it, so the trend is on one chart;
* by category - the categories of the order's products (an order of food and toys counts for both);
* by lateness - the order's delivery against its promised date (the orders' ``promised_delivery_at``, else
  ``late_after_days`` after the order, as incidents count it): on time, 1-3 days late, later, or not known;
* themes - comments matched against keyword stems per language (ru, pl, en): delivery, packaging, quality,
  price, service, product choice; a comment may touch several. Counted, and quoted without names or ids.

Comments are customers' words: they appear here in aggregate and as anonymous quotes, never with who said
them, and never in logs. The table artifact has counts and NPS only; the quotes are in the Markdown file of
the report folder (``<output>/reports/survey/<week>/``), next to the PNG chart and the CSV tables.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.data.snapshot import read_table
from tasks.kernel.enums import OrderStatus, Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.profile.charts import _save
from tasks.state.backend import open_state
from tasks.state.surveys import SurveyAnswer

WEEKS_SHOWN = 8
QUOTES_PER_THEME = 3
LATENESS = ("on time", "1-3 days late", "later", "not known")
# Keyword stems per theme and language, matched at the start of a word, case-insensitively.
THEMES: dict[str, dict[str, tuple[str, ...]]] = {
    "delivery": {
        "ru": ("доставк", "доставил", "доставлен", "курьер", "опоздал", "задерж", "привезл"),
        "pl": ("dostaw", "kurier", "przesył", "spóźni", "opóźni", "dotarł"),
        "en": ("deliver", "shipping", "shipped", "courier", "late", "arriv"),
    },
    "packaging": {
        "ru": ("упаков", "коробк", "помят", "пакет"),
        "pl": ("opakow", "pudeł", "pudel", "karton", "zgniec", "zapakow"),
        "en": ("packag", "packed", "box", "crushed", "wrapp"),
    },
    "quality": {
        "ru": ("качеств", "брак", "сломан", "испорч", "бракован"),
        "pl": ("jakoś", "jakos", "wadliw", "uszkodz", "zepsut"),
        "en": ("quality", "broken", "defect", "damaged", "faulty"),
    },
    "price": {
        "ru": ("цен", "дорог", "дешев", "скидк"),
        "pl": ("cen", "drogi", "drogo", "tani", "tanio", "rabat", "promocj"),
        "en": ("price", "expensive", "cheap", "discount", "cost"),
    },
    "service": {
        "ru": ("поддержк", "оператор", "менеджер", "вежлив", "сервис"),
        "pl": ("obsług", "konsultant", "kontakt", "uprzejm"),
        "en": ("support", "service", "staff", "helpful", "rude"),
    },
    "choice": {
        "ru": ("ассортимент", "выбор", "наличи"),
        "pl": ("asortyment", "wybór", "wybor", "dostępn"),
        "en": ("choice", "range", "selection", "stock"),
    },
}
_PATTERNS = {
    (theme, language): re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, stems)) + ")", re.IGNORECASE)
    for theme, languages in THEMES.items()
    for language, stems in languages.items()
}


def iso_week(text: str) -> tuple[datetime, datetime]:
    """The UTC start and end (exclusive) of an ISO week written ``YYYY-Www`` (``2024-W22``)."""
    match = re.fullmatch(r"(\d{4})-W(\d{2})", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an ISO week: write it as YYYY-Www, e.g. 2024-W22")
    monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    start = datetime.combine(monday, time.min, tzinfo=UTC)
    return start, start + timedelta(days=7)


def week_label(at: datetime) -> str:
    """``YYYY-Www`` of a moment (UTC)."""
    year, week, _ = at.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def nps(scores: pd.Series) -> float:
    """% promoters (9-10) - % detractors (0-6), -100 to 100; NaN without answers."""
    if scores.empty:
        return float("nan")
    values = scores.astype(int)
    return round(100.0 * (float((values >= 9).mean()) - float((values <= 6).mean())), 1)


def _summary(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Answers, promoters, passives, detractors and NPS per value of ``by``."""
    groups = frame.groupby(by)["score"]
    out = pd.DataFrame(
        {
            "answers": groups.size(),
            "promoters": groups.agg(lambda s: int((s >= 9).sum())),
            "passives": groups.agg(lambda s: int(((s >= 7) & (s <= 8)).sum())),
            "detractors": groups.agg(lambda s: int((s <= 6).sum())),
            "nps": groups.agg(nps),
        }
    )
    return out.rename_axis(by).reset_index()


def themes_of(comment: str) -> list[tuple[str, str]]:
    """The (theme, language) pairs a comment's words match."""
    return [key for key, pattern in _PATTERNS.items() if pattern.search(comment)]


@dataclass(frozen=True)
class SurveyReport:
    """The week's tables (and anonymous quotes per theme)."""

    week: str
    by_week: pd.DataFrame
    by_category: pd.DataFrame
    by_lateness: pd.DataFrame
    themes: pd.DataFrame
    quotes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def answers(self) -> int:
        row = self.by_week.loc[self.by_week["week"] == self.week, "answers"]
        return int(row.iloc[0]) if len(row) else 0

    @property
    def nps(self) -> float:
        row = self.by_week.loc[self.by_week["week"] == self.week, "nps"]
        return float(row.iloc[0]) if len(row) else float("nan")


def survey_report(
    answers: list[SurveyAnswer],
    week: str,
    orders: pd.DataFrame | None = None,
    order_items: pd.DataFrame | None = None,
    products: pd.DataFrame | None = None,
    order_events: pd.DataFrame | None = None,
    late_after_days: int = 7,
) -> SurveyReport:
    """Build the report of ``week`` from the answers of it and the weeks before (``WEEKS_SHOWN`` in all).

    The shop's tables give each answered order its categories and lateness; without them both read "not known".
    """
    start, end = iso_week(week)
    frame = pd.DataFrame(
        {
            "customer_id": [a.customer_id for a in answers],
            "order_id": [a.order_id for a in answers],
            "score": pd.Series([a.score for a in answers], dtype="int64"),
            "comment": [a.comment for a in answers],
            "week": [week_label(a.answered_at) for a in answers],
            "in_week": [start <= a.answered_at < end for a in answers],
        }
    )
    weeks = [week_label(start - timedelta(weeks=n)) for n in range(WEEKS_SHOWN - 1, -1, -1)]
    by_week = _summary(frame.loc[frame["week"].isin(weeks)], "week")
    by_week = pd.DataFrame({"week": weeks}).merge(by_week, on="week", how="left")
    by_week[["answers", "promoters", "passives", "detractors"]] = (
        by_week[["answers", "promoters", "passives", "detractors"]].fillna(0).astype(int)
    )
    current = frame.loc[frame["in_week"].to_numpy(dtype=bool)]
    categories = _categories(current, order_items, products)
    by_category = _summary(categories, "category").sort_values(["answers", "category"])
    by_category = by_category.iloc[::-1].reset_index(drop=True)
    lateness = current.assign(lateness=_lateness(current, orders, order_events, late_after_days))
    by_lateness = _summary(lateness, "lateness")
    by_lateness = pd.DataFrame({"lateness": LATENESS}).merge(by_lateness, on="lateness", how="inner")
    themes, quotes = _themes(current)
    return SurveyReport(week, by_week, by_category, by_lateness, themes, quotes)


def _categories(answers: pd.DataFrame, items: pd.DataFrame | None, products: pd.DataFrame | None) -> pd.DataFrame:
    if items is None or products is None or answers.empty:
        return answers.assign(category="not known")
    category = products.set_index(products["product_id"].astype(str))["category"].astype(str)
    lines = items.assign(order_id=items["order_id"].astype(str), product_id=items["product_id"].astype(str))
    lines = lines.assign(category=lines["product_id"].map(category).fillna("not known"))
    pairs = lines[["order_id", "category"]].drop_duplicates()
    out = answers.merge(pairs, on="order_id", how="left")
    return out.assign(category=out["category"].fillna("not known"))


def _lateness(
    answers: pd.DataFrame, orders: pd.DataFrame | None, events: pd.DataFrame | None, late_after_days: int
) -> list[str]:
    if orders is None or events is None or answers.empty:
        return ["not known"] * len(answers)
    facts = orders.assign(order_id=orders["order_id"].astype(str)).drop_duplicates("order_id").set_index("order_id")
    promised = pd.to_datetime(facts["created_at"], utc=True) + pd.Timedelta(days=late_after_days)
    if "promised_delivery_at" in facts.columns:
        promised = pd.to_datetime(facts["promised_delivery_at"], utc=True, errors="coerce").fillna(promised)
    delivered_events = events.loc[events["status"].astype(str) == OrderStatus.DELIVERED.value]
    delivered = (
        delivered_events.assign(
            order_id=delivered_events["order_id"].astype(str), at=lambda e: pd.to_datetime(e["at"], utc=True)
        )
        .groupby("order_id")["at"]
        .min()
    )
    out = []
    for order in answers["order_id"].astype(str):
        if order not in delivered.index or order not in promised.index:
            out.append("not known")
            continue
        late = (delivered[order].normalize() - promised[order].normalize()).days
        out.append("on time" if late <= 0 else "1-3 days late" if late <= 3 else "later")
    return out


def _themes(answers: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    counts: dict[tuple[str, str], int] = {}
    quotes: dict[str, list[str]] = {}
    for comment in answers["comment"]:
        if not comment:
            continue
        found = themes_of(comment)
        for key in found:
            counts[key] = counts.get(key, 0) + 1
        for theme in dict.fromkeys(t for t, _ in found):
            if len(quotes.setdefault(theme, [])) < QUOTES_PER_THEME:
                quotes[theme].append(comment[:300])
    rows = [
        {"theme": theme, **{language: counts.get((theme, language), 0) for language in ("ru", "pl", "en")}}
        for theme in THEMES
    ]
    table = pd.DataFrame(rows)
    table["comments"] = table[["ru", "pl", "en"]].sum(axis=1)
    return table.sort_values("comments", ascending=False, kind="stable").reset_index(drop=True), quotes


def nps_chart(report: SurveyReport, target: Path) -> Path:
    """Draw NPS by week (bars, the report's week darker) and the week's NPS by delivery lateness."""
    fig, (weeks, late) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    values = report.by_week["nps"].fillna(0).to_numpy(float)
    colours = ["#c33" if w == report.week else "#e99" for w in report.by_week["week"]]
    weeks.bar(range(len(values)), values, color=colours)
    weeks.set_xticks(range(len(values)), [w[5:] for w in report.by_week["week"]], fontsize=8)
    weeks.axhline(0, color="#666", linewidth=0.8)
    weeks.set_ylim(-100, 100)
    weeks.set_title(f"NPS by week (answers: {report.answers} in {report.week})")
    late.barh(report.by_lateness["lateness"], report.by_lateness["nps"].fillna(0), color="#4c72b0")
    late.axvline(0, color="#666", linewidth=0.8)
    late.set_xlim(-100, 100)
    late.set_title("NPS by delivery lateness")
    return _save(fig, target)


def report_markdown(report: SurveyReport) -> str:
    """The report as Markdown: the tables, then up to three anonymous quotes per theme."""
    parts = [f"# Survey report {report.week}", "", f"NPS {report.nps:g} from {report.answers} answers.", ""]
    for title, table in (
        ("By week", report.by_week),
        ("By category", report.by_category),
        ("By delivery lateness", report.by_lateness),
        ("Comment themes (comments per language)", report.themes),
    ):
        parts += [f"## {title}", "", _markdown_table(table), ""]
    if report.quotes:
        parts += ["## What customers wrote (anonymous)", ""]
        for theme, quotes in report.quotes.items():
            parts += [f"**{theme}**", ""] + [f"> {q.replace(chr(10), ' ')}" for q in quotes] + [""]
    return "\n".join(parts)


def _latest_snapshot(settings: Settings, end: datetime) -> RunPaths | None:
    """The latest run folder with a snapshot on or before the week's last day (a week back at most)."""
    for back in range(1, 15):
        paths = RunPaths.for_day(settings.output_dir, (end - timedelta(days=back)).date())
        if paths.table(Table.ORDERS).exists():
            return paths
    return None


def write_survey_report(week: str, settings: Settings) -> SurveyReport:
    """Write the week's survey report into its folder: CSV tables, the PNG chart, Markdown with quotes."""
    start, end = iso_week(week)
    found = open_state(settings).surveys.answers(start - timedelta(weeks=WEEKS_SHOWN - 1), end)
    paths = _latest_snapshot(settings, end)
    tables: dict[Table, pd.DataFrame | None] = dict.fromkeys(
        (Table.ORDERS, Table.ORDER_ITEMS, Table.PRODUCTS, Table.ORDER_EVENTS)
    )
    if paths is not None:
        tables |= {t: read_table(paths, t) for t in tables if paths.table(t).exists()}
    report = survey_report(
        found,
        week,
        tables[Table.ORDERS],
        tables[Table.ORDER_ITEMS],
        tables[Table.PRODUCTS],
        tables[Table.ORDER_EVENTS],
        settings.late_after_days,
    )
    folder = survey_report_folder(settings, week)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("by_week", "by_category", "by_lateness", "themes"):
        getattr(report, name).to_csv(folder / f"{name}.csv", index=False)
    nps_chart(report, folder / "nps.png")
    (folder / "report.md").write_text(report_markdown(report), encoding="utf-8")
    return report


@task(cache_policy=NO_CACHE)
def report_survey(week: str, settings: Settings) -> SurveyReport:
    """Write the week's survey report (CSV tables, PNG chart, Markdown with quotes) and its table artifact."""
    report = write_survey_report(week, settings)
    folder = survey_report_folder(settings, week)
    rows = [{"table": "week", **_cells(r)} for r in report.by_week.to_dict("records")]
    rows += [{"table": "category", **_cells(r)} for r in report.by_category.to_dict("records")]
    rows += [{"table": "lateness", **_cells(r)} for r in report.by_lateness.to_dict("records")]
    create_table_artifact(
        table=rows,
        key="survey-report",
        description=f"Survey {week}: NPS {report.nps:g} from {report.answers} answers; by week, category and "
        f"delivery lateness. Themes, quotes and the chart: {folder}",
    )
    return report


def _cells(row: dict[Hashable, Any]) -> dict[str, str]:
    label = row.get("week") or row.get("category") or row.get("lateness")
    return {
        "group": str(label),
        **{str(k): _text(v) for k, v in row.items() if k not in {"week", "category", "lateness"}},
    }


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (no extra dependency)."""
    if table.empty:
        return "(none)"
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(_text(v).replace("|", "/") for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def survey_report_folder(settings: Settings, week: str) -> Path:
    """Where a week's survey report is written: ``<output>/reports/survey/<week>/``."""
    return settings.output_dir / "reports" / "survey" / week
