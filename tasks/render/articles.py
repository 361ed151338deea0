"""Useful articles: short advice a message carries beside its offer, never the same one twice to a customer.

An article is a content file, ``templates/_articles/<locale>/<slug>.md``: a front matter between two
``---`` lines, then the body, plain text in paragraphs separated by blank lines (no markup: it is shown
as written, escaped in HTML)::

    ---
    title: Switching your cat's food? Take it slowly
    interest: cat        # an interest group (LOYALTY_PICKS_EXCLUSIVE_GROUPS: cat, dog) or any
    from: 2026-04-01     # optional: not used before this day
    ---
    Cats have sensitive stomachs, ...

A marketer adds one by adding a file; the same advice in another language keeps the same file name
(the slug), so a customer who changes language is not given it again. Files are validated with
pydantic when read: a bad one is a ``CatalogError`` naming the file and the field, and ``loyalty
campaigns check`` reports every bad file.

Which article a message carries is decided when its shard is rendered, for the messages whose
template shows one (``shows_article``: the template uses ``article``; no article is spent on a
message that does not show it): among the articles of the message's locale for the customer's
interest or ``any`` that may be used on the message's day, the first the customer has not been given,
the customer's own interest before ``any``, each group by ``from`` date then slug. When none is left
the message goes without (never a repeat). ``ArticleHistory`` remembers what was given, per customer
and article, with the message's idempotency key and day, in a SQLite file in the state folder: a
re-render of the same message (a retry, a re-run of the day) carries the same article again. A shard
reads, chooses and records in one ``BEGIN IMMEDIATE`` transaction, so shards rendered at once never
give one customer the same article twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated

import jinja2
import jinja2.meta
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.kernel.enums import Channel
from tasks.kernel.errors import CatalogError
from tasks.kernel.settings import Settings
from tasks.render.templating import PARTS, SMS_PART, Article

ARTICLES_DIR = "_articles"
HISTORY_FILE = "articles.sqlite"
ANY = "any"  # an article for every customer, whatever their interest
MAX_BODY_CHARS = 1200  # a tip beside an offer, not a blog post
_BATCH = 500  # customers per lookup: SQLite's bound-parameter limit is far above

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=80)]


class FrontMatter(BaseModel):
    """What a marketer writes above an article's body."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=120)
    interest: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="An interest group, or any.")
    from_: date | None = Field(None, alias="from", description="Not used before this day.")


class ArticleFile(BaseModel):
    """One article as read from its file: where it belongs (locale, interest, from which day) and what it says."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slug: Slug
    locale: str
    title: str
    interest: str
    from_: date | None = None
    paragraphs: tuple[str, ...] = Field(min_length=1)

    @property
    def shown(self) -> Article:
        """The article as a message shows it: title and paragraphs."""
        return Article(title=self.title, paragraphs=self.paragraphs)

    def fits(self, locale: str, interest: str | None, day: date) -> bool:
        """Whether a message on ``day`` in ``locale`` to a customer of ``interest`` may carry this article."""
        return self.locale == locale and self.interest in (interest, ANY) and (self.from_ is None or self.from_ <= day)


def articles_dir(templates_dir: Path) -> Path:
    """Where the articles live: ``templates/_articles/<locale>/<slug>.md``."""
    return templates_dir / ARTICLES_DIR


def article_files(templates_dir: Path) -> list[Path]:
    """Every article file, in a stable order."""
    return sorted(articles_dir(templates_dir).glob("*/*.md"))


def load_article(path: Path, interests: Sequence[str]) -> ArticleFile:
    """Read and validate one article file; ``interests``: the interest groups an article may be for (or ``any``).

    A file without its front matter, with an unknown or missing field, an unknown interest or an empty or
    overlong body is a ``CatalogError`` naming the file and the field.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # an editor may save a BOM
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not UTF-8 text (save the file as UTF-8)") from None
    if not lines or lines[0].strip() != "---":
        raise CatalogError(f"{path}: line 1: an article starts with a '---' line, its front matter and another '---'")
    end = next((n for n, line in enumerate(lines[1:], start=1) if line.strip() == "---"), None)
    if end is None:
        raise CatalogError(f"{path}: front matter: no closing '---' line after the title and interest")
    try:
        raw = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: front matter: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: front matter: expected 'title: ...' and 'interest: ...' lines")
    try:
        front = FrontMatter.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]).replace("from_", "from") or "front matter"
        raise CatalogError(f"{path}: {where}: {first['msg']}") from None
    if front.interest != ANY and front.interest not in interests:
        known = ", ".join([ANY, *interests])
        raise CatalogError(f"{path}: interest: {front.interest!r} is none of {known} (LOYALTY_PICKS_EXCLUSIVE_GROUPS)")
    paragraphs = _paragraphs(lines[end + 1 :])
    if not paragraphs:
        raise CatalogError(f"{path}: body: empty (write the advice below the second '---' line)")
    length = sum(len(p) for p in paragraphs)
    if length > MAX_BODY_CHARS:
        raise CatalogError(f"{path}: body: {length} characters, at most {MAX_BODY_CHARS} (a short tip, 2-4 sentences)")
    try:
        return ArticleFile(
            slug=path.stem,
            locale=path.parent.name,
            title=front.title,
            interest=front.interest,
            from_=front.from_,
            paragraphs=paragraphs,
        )
    except ValidationError:
        raise CatalogError(f"{path}: file name: use small letters, digits and dashes (cat-food-switch.md)") from None


def _paragraphs(lines: Sequence[str]) -> tuple[str, ...]:
    """Paragraphs separated by blank lines; the lines of a paragraph joined by one space."""
    out: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            out.append(" ".join(current))
            current = []
    return tuple(out)


def load_articles(templates_dir: Path, interests: Sequence[str]) -> tuple[ArticleFile, ...]:
    """Read every article file (none: an empty pool); the first bad file is a ``CatalogError`` naming it."""
    return tuple(load_article(path, interests) for path in article_files(templates_dir))


def shows_article(env: jinja2.Environment, template: str, locale: str, channel: str) -> bool:
    """Whether a template's parts for this channel use ``article`` (an email's subject and bodies, an SMS's text)."""
    if env.loader is None:
        return False
    parts = (SMS_PART,) if channel == Channel.SMS.value else PARTS
    for part in parts:
        try:
            source, _, _ = env.loader.get_source(env, f"{template}/{locale}/{part}")
        except jinja2.TemplateNotFound:
            continue  # rendering names the missing part
        if "article" in jinja2.meta.find_undeclared_variables(env.parse(source)):
            return True
    return False


def next_article(
    pool: Sequence[ArticleFile],
    locale: str,
    interest: str | None,
    day: date,
    given: Mapping[str, str],
    idempotency_key: str,
) -> ArticleFile | None:
    """The article a message carries, or None when the customer has had every article that fits.

    ``given``: slug → idempotency key of the message that carried it, for this customer. The article
    already given with this very message comes again (a re-render); else the first one not given yet:
    the customer's own interest before ``any``, each by ``from`` date then slug.
    """
    fitting = sorted(
        (a for a in pool if a.fits(locale, interest, day)),
        key=lambda a: (a.interest == ANY, a.from_ or date.min, a.slug),
    )
    again = next((a for a in fitting if given.get(a.slug) == idempotency_key), None)
    return again or next((a for a in fitting if a.slug not in given), None)


@dataclass(frozen=True)
class ArticleWanted:
    """A message whose template shows an article: whose it is, in which language, for which interest, on which day."""

    idempotency_key: str
    customer_id: str
    locale: str
    interest: str | None
    day: date


class ArticleHistory:
    """Which articles each customer has been given, with which message and on which day, in the state folder."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with self._transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS given_articles ("
                " customer_id TEXT NOT NULL, article TEXT NOT NULL, idempotency_key TEXT NOT NULL,"
                " day TEXT NOT NULL, PRIMARY KEY (customer_id, article))"
            )

    @classmethod
    def for_settings(cls, settings: Settings) -> ArticleHistory:
        """Open the history kept in the state folder."""
        return cls(settings.state_dir / HISTORY_FILE)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock before reading: two shards choosing at once cannot both pick one article
        with closing(sqlite3.connect(self._path, timeout=30, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def give(self, pool: Sequence[ArticleFile], wanted: Sequence[ArticleWanted]) -> dict[str, ArticleFile]:
        """Choose each wanted message's article (``next_article``) and remember it; return them by idempotency key.

        A message for which none is left is not in the answer.
        """
        if not wanted:
            return {}
        chosen: dict[str, ArticleFile] = {}
        with self._transaction() as db:
            given = self._given(db, sorted({w.customer_id for w in wanted}))
            new: list[tuple[str, str, str, str]] = []
            for w in wanted:
                had = given.setdefault(w.customer_id, {})
                article = next_article(pool, w.locale, w.interest, w.day, had, w.idempotency_key)
                if article is None:
                    continue
                chosen[w.idempotency_key] = article
                if article.slug not in had:
                    had[article.slug] = w.idempotency_key  # a second message of the customer in this shard moves on
                    new.append((w.customer_id, article.slug, w.idempotency_key, w.day.isoformat()))
            db.executemany("INSERT OR IGNORE INTO given_articles VALUES (?, ?, ?, ?)", new)
        return chosen

    def forget(self, customer_id: str) -> int:
        """Erase what a customer was given (``loyalty forget``); return how many rows."""
        with self._transaction() as db:
            return db.execute("DELETE FROM given_articles WHERE customer_id = ?", (customer_id,)).rowcount

    def given(self, customer_id: str) -> dict[str, str]:
        """The articles a customer has been given: slug → idempotency key of the message that carried it."""
        with self._transaction() as db:
            return self._given(db, [customer_id]).get(customer_id, {})

    @staticmethod
    def _given(db: sqlite3.Connection, customer_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for start in range(0, len(customer_ids), _BATCH):
            batch = customer_ids[start : start + _BATCH]
            rows = db.execute(
                "SELECT customer_id, article, idempotency_key FROM given_articles"
                f" WHERE customer_id IN ({', '.join('?' * len(batch))})",
                batch,
            )
            for customer_id, article, key in rows:
                out.setdefault(customer_id, {})[article] = key
        return out
