"""The name a message addresses its customer by: Polish in the vocative from a table, no guessed endings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.demo.synth.contacts import _NAMES
from tasks.kernel.errors import CatalogError
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.render.catalog_check import check_catalog
from tasks.render.names import greeting_name, load_vocatives, vocatives_path

TEMPLATES = PROJECT_ROOT / "templates"


@pytest.mark.parametrize(
    ("name", "vocative"),
    [
        ("Anna", "Anno"),
        ("Maria", "Mario"),
        ("Katarzyna", "Katarzyno"),
        ("Józef", "Józefie"),
        ("Piotr", "Piotrze"),
        ("Paweł", "Pawle"),
        ("Marek", "Marku"),
        ("Tomasz", "Tomaszu"),
        ("Jan", "Janie"),
        ("Michał", "Michale"),
        ("Krzysztof", "Krzysztofie"),
        ("Andrzej", "Andrzeju"),
        ("Kacper", "Kacprze"),
        ("Jerzy", "Jerzy"),
        ("Ola", "Olu"),
        ("Kasia", "Kasiu"),
        ("Maciek", "Maćku"),
    ],
)
def test_a_polish_customer_is_addressed_in_the_vocative(name: str, vocative: str) -> None:
    assert greeting_name(name, "pl", TEMPLATES) == vocative


def test_the_vocative_keeps_the_customers_capitalisation_and_matches_whatever_case_they_typed() -> None:
    assert greeting_name("ANNA", "pl", TEMPLATES) == "ANNO"
    assert greeting_name("paweł", "pl", TEMPLATES) == "pawle"
    assert greeting_name("aNNa", "pl", TEMPLATES) == "Anno"  # no style to keep: the table's


def test_a_name_the_polish_table_does_not_know_gets_no_name_never_a_guessed_ending() -> None:
    assert greeting_name("Xenofonta", "pl", TEMPLATES) is None
    assert greeting_name("John", "pl", TEMPLATES) is None
    assert greeting_name("Anna Maria", "pl", TEMPLATES) is None
    assert greeting_name(None, "pl", TEMPLATES) is None


def test_russian_and_english_customers_are_addressed_by_the_first_name_as_given() -> None:
    assert greeting_name("Анна", "ru", TEMPLATES) == "Анна"
    assert greeting_name("Anna", "en", TEMPLATES) == "Anna"
    assert greeting_name(None, "en", TEMPLATES) is None


def test_every_polish_first_name_of_the_demo_shop_has_its_vocative() -> None:
    polish = next(n for n in _NAMES if "Katarzyna" in n.female)

    missing = [name for name in polish.female + polish.male if greeting_name(name, "pl", TEMPLATES) is None]

    assert missing == []


def test_the_polish_table_holds_the_common_names_once_each() -> None:
    table = load_vocatives(vocatives_path(TEMPLATES, "pl"))

    assert len(table) >= 300  # the 150 most frequent female and male names and more, with diminutives
    assert all(v.strip() == v and v[:1].isupper() for v in table.values())


def _table(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "templates" / "_locale" / "pl" / "vocatives.csv"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding=encoding)
    return path


def test_a_marketer_adds_a_name_by_adding_a_row_in_a_spreadsheet_that_saves_semicolons(tmp_path: Path) -> None:
    path = _table(tmp_path, "name;vocative\nNikola;Nikolo\n", encoding="utf-8-sig")

    assert greeting_name("Nikola", "pl", path.parents[2]) == "Nikolo"
    assert greeting_name("Anna", "pl", path.parents[2]) is None  # this folder's table does not know her


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("imię,wołacz\nAnna,Anno\n", "line 1: the header must be 'name,vocative'"),
        ("name,vocative\nAnna,Anno\nJan\n", "line 3: a row is a name and its vocative"),
        ("name,vocative\nAnna,Anno\n\nANNA,Anna\n", "line 4: 'ANNA' is already listed with 'Anno'"),
    ],
)
def test_a_broken_table_is_refused_naming_the_file_and_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = _table(tmp_path, text)

    with pytest.raises(CatalogError) as err:
        load_vocatives(path)

    assert str(err.value).startswith(f"{path}: {message}")


def test_the_catalog_check_names_a_broken_table(tmp_path: Path) -> None:
    path = _table(tmp_path, "name,vocative\nAnna\n")
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()

    _, problems = check_catalog(campaigns, path.parents[2], Settings(_env_file=None))

    assert [(p.file, p.field) for p in problems] == [(str(path), "line 2")]
    assert problems[0].reason.startswith("a row is a name and its vocative")
