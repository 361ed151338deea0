"""The name a message addresses its customer by, as the locale says it.

Polish addresses a person in the vocative: «Cześć, Anno!», «Dzień dobry, Józefie!», never the
nominative «Cześć Anna». The endings are irregular (Paweł → Pawle, Marek → Marku, Kacper → Kacprze,
Ola → Olu, Jerzy → Jerzy), so they are not computed: a locale whose folder has
``templates/_locale/<locale>/vocatives.csv`` (columns ``name,vocative``, UTF-8, one name a row) is
addressed only by the names in it, and a name the table does not know gets no name at all (the
templates greet without one) rather than a guessed ending. Locales without the file (ru, en) are
addressed by the first name as given.

Marketers add names by appending rows; ``loyalty campaigns check`` reads the file and names a bad row.
The Polish table holds the most frequent given names of the PESEL registry and their common
diminutives, each vocative checked against the SGJP dictionary (through Morfeusz 2). A name is
matched case-insensitively and answered in the customer's own style: ``ANNA`` → ``ANNO``,
``anna`` → ``anno``, ``Anna`` → ``Anno``.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping
from pathlib import Path

from tasks.kernel.errors import CatalogError

VOCATIVES_FILE = "vocatives.csv"
_HEADER = ["name", "vocative"]


def vocatives_path(templates_dir: Path, locale: str) -> Path:
    """Where a locale's table of vocatives lives: ``templates/_locale/<locale>/vocatives.csv``."""
    return templates_dir / "_locale" / locale / VOCATIVES_FILE


def load_vocatives(path: Path) -> Mapping[str, str]:
    """Read a table of vocatives: case-folded name → vocative as written in the table.

    A row without both columns, or a name listed twice with different vocatives, is a ``CatalogError``
    naming the file and the line.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a spreadsheet may save a BOM
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not UTF-8 text (save the file as UTF-8)") from None
    # a spreadsheet in a Polish locale saves CSV with semicolons
    delimiter = ";" if lines and ";" in lines[0] and "," not in lines[0] else ","
    reader = csv.reader(lines, delimiter=delimiter)
    if [h.strip().lower() for h in next(reader, [])] != _HEADER:
        raise CatalogError(f"{path}: line 1: the header must be 'name,vocative'")
    table: dict[str, str] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise CatalogError(f"{path}: line {line}: a row is a name and its vocative, e.g. 'Anna,Anno'")
        name, vocative = row[0].strip(), row[1].strip()
        known = table.setdefault(name.casefold(), vocative)
        if known != vocative:
            raise CatalogError(f"{path}: line {line}: {name!r} is already listed with {known!r}")
    return table


def greeting_name(first_name: str | None, locale: str, templates_dir: Path) -> str | None:
    """The name to address the customer by in ``locale``: the vocative where the locale has a table
    (None for a name it does not know), else the first name as given."""
    if first_name is None:
        return None
    table = _locale_vocatives(templates_dir, locale)
    if table is None:
        return first_name
    vocative = table.get(first_name.casefold())
    return None if vocative is None else _in_style_of(first_name, vocative)


@functools.cache
def _locale_vocatives(templates_dir: Path, locale: str) -> Mapping[str, str] | None:
    """A locale's table, read once per process (None: the locale has none)."""
    path = vocatives_path(templates_dir, locale)
    return load_vocatives(path) if path.is_file() else None


def _in_style_of(given: str, vocative: str) -> str:
    """The vocative written the way the customer wrote the name: all capitals, all small, or as the table has it."""
    if given.isupper():
        return vocative.upper()
    if given.islower():
        return vocative.lower()
    return vocative
