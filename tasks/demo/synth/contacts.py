"""Contacts: names, emails, phones, birthdays and consents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from tasks.demo.synth.clock import _ZONES
from tasks.demo.synth.common import _SD, DAY, BoolA, IntA, Rng, StrA, _join, _strings
from tasks.demo.synth.people import _People


def _words(text: str) -> tuple[str, ...]:
    """Space-separated words: long name lists read better as text."""
    return tuple(text.split())


# Passport-style Latin spelling; the soft and hard signs (') vanish in emails.
_RU_TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        _words("a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch ' y ' e yu ya"),
        strict=True,
    )
)
_PL_TRANSLIT = dict(zip("ąćęłńóśźż", "acelnoszz", strict=True))


def _ascii(name: str) -> str:
    """Lower-case Latin spelling of a name, as people put it in an email address."""
    out = []
    for ch in name.lower():
        ch = _RU_TRANSLIT.get(ch, _PL_TRANSLIT.get(ch, ch))
        out.append("".join(c for c in ch if "a" <= c <= "z"))
    return "".join(out)


def _ru_feminine(surname: str) -> str:
    """Иванов -> Иванова, Вишневский -> Вишневская; other surnames do not change."""
    if surname.endswith(("ский", "цкий")):
        return surname[:-2] + "ая"
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return surname + "а"
    return surname


def _pl_feminine(surname: str) -> str:
    """Kowalski -> Kowalska, Nowicki -> Nowicka; Nowak stays Nowak."""
    return surname[:-1] + "a" if surname.endswith("ki") else surname


_RU_SURNAMES = _words(
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов "
    "Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев "
    "Макаров Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв "
    "Сергеев Кузьмин Фролов Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков "
    "Сорокин Виноградов Ковалёв Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров "
    "Давыдов Беляев Герасимов Богданов Осипов Сидоров Вишневский Покровский Троицкий "
    "Шевченко Ковальчук"
)
_PL_SURNAMES = _words(
    "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański "
    "Woźniak Dąbrowski Kozłowski Jankowski Mazur Wojciechowski Kwiatkowski Krawczyk Kaczmarek "
    "Piotrowski Grabowski Zając Pawłowski Michalski Król Wieczorek Jabłoński Wróbel Nowakowski "
    "Majewski Olszewski Stępień Malinowski Jaworski Adamczyk Dudek Nowicki Pawlak Górski "
    "Witkowski Walczak Sikora Baran Rutkowski Michalak Szewczyk Ostrowski Tomaszewski Pietrzak "
    "Zalewski Wróblewski"
)
_EN_SURNAMES = _words(
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright Thompson Evans "
    "Walker White Roberts Green Hall Wood Jackson Clarke Murphy Kelly O'Brien Byrne Ryan Walsh "
    "O'Sullivan Doyle Miller Davis Garcia Rodriguez Martinez Anderson Thomas Moore Martin Lee "
    "Harris Clark"
)


@dataclass(frozen=True)
class _Names:
    female: tuple[str, ...]
    male: tuple[str, ...]
    surname_m: tuple[str, ...]
    surname_f: tuple[str, ...]
    domains: tuple[str, ...]  # reserved example domains only (RFC 2606)


_NAMES: tuple[_Names, ...] = (
    _Names(
        female=_words(
            "Анна Мария Елена Ольга Наталья Екатерина Татьяна Ирина Светлана Юлия Анастасия Дарья "
            "Ксения Алина Виктория Полина Марина Людмила Галина Валентина Софья Вера Надежда Алёна "
            "Евгения Кристина Любовь Диана Вероника Александра"
        ),
        male=_words(
            "Александр Сергей Дмитрий Андрей Алексей Максим Иван Михаил Евгений Николай Владимир "
            "Артём Денис Павел Роман Игорь Олег Никита Кирилл Егор Илья Антон Виктор Константин "
            "Юрий Григорий Тимур Фёдор Матвей Степан"
        ),
        surname_m=_RU_SURNAMES,
        surname_f=tuple(_ru_feminine(s) for s in _RU_SURNAMES),
        domains=("mail.example.com", "inbox.example.org", "post.example.net", "example.com"),
    ),
    _Names(
        female=_words(
            "Anna Maria Katarzyna Małgorzata Agnieszka Barbara Ewa Krystyna Magdalena Elżbieta "
            "Joanna Aleksandra Zofia Monika Natalia Julia Karolina Marta Beata Dorota Justyna "
            "Paulina Zuzanna Weronika Agata Hanna Łucja Iwona Grażyna Jadwiga"
        ),
        male=_words(
            "Piotr Krzysztof Andrzej Tomasz Paweł Jan Michał Marcin Jakub Adam Łukasz Mateusz "
            "Marek Grzegorz Wojciech Stanisław Józef Kamil Dariusz Rafał Szymon Bartosz Maciej "
            "Przemysław Sebastian Zbigniew Jerzy Kacper Filip Wiktor"
        ),
        surname_m=_PL_SURNAMES,
        surname_f=tuple(_pl_feminine(s) for s in _PL_SURNAMES),
        domains=("poczta.example.net", "skrzynka.example.com", "example.org", "wp.example.net"),
    ),
    _Names(
        female=_words(
            "Emma Olivia Sophie Emily Grace Charlotte Amelia Jessica Hannah Lucy Sarah Laura Chloe "
            "Megan Rachel Rebecca Katie Ella Isla Aoife Siobhan Niamh Ashley Jennifer Madison "
            "Abigail Lauren Holly Ruby Freya"
        ),
        male=_words(
            "James Oliver Jack Harry George Thomas William Daniel Samuel Joseph Liam Noah Ethan "
            "Michael David Matthew Ryan Connor Sean Patrick Cian Conor Tyler Brandon Jacob "
            "Christopher Andrew Luke Callum Alfie"
        ),
        surname_m=_EN_SURNAMES,
        surname_f=_EN_SURNAMES,
        domains=("example.com", "mail.example.org", "example.net", "inbox.example.com"),
    ),
)

_JUNK_PHONES = ("12-34", "call me", "000", "n/a", "123", "tel", "0000000")
_JUNK_EMAIL_TAILS = (">", ";", "..", "#")


def _zipf_choice(rng: Rng, size: int, n: int) -> IntA:
    """Indices 0..n-1 with a few common values and a long tail, like real names."""
    w = 1.0 / (np.arange(n) + 3.0) ** 0.9
    chosen: IntA = rng.choice(n, size=size, p=w / w.sum())
    return chosen


def _digits(rng: Rng, n: int, k: int, low: int = 0) -> StrA:
    """``n`` random zero-padded ``k``-digit strings."""
    padded: StrA = np.strings.zfill(rng.integers(low, 10**k, n).astype(_SD), k)
    return padded


def _phones(country: str, n: int, rng: Rng) -> StrA:
    """Valid mobile numbers of the country, in the formats people type them."""
    style = rng.random(n)
    if country == "RU":
        op = rng.integers(900, 1000, n)
        op[op == 930] = 931  # 930 0xx is not allocated
        a, b, c, op_s = _digits(rng, n, 3), _digits(rng, n, 2), _digits(rng, n, 2), op.astype(_SD)
        return np.where(
            style < 0.45,
            _join("8 (", op_s, ") ", a, "-", b, "-", c),
            np.where(style < 0.8, _join("+7 ", op_s, " ", a, "-", b, "-", c), _join("8", op_s, a, b, c)),
        )
    if country == "PL":
        prefixes = np.array(["45", "50", "51", "53", "57", "60", "66", "69", "72", "73", "78", "79", "88"], dtype=_SD)
        head = _join(prefixes[rng.integers(0, prefixes.size, n)], _digits(rng, n, 1))
        a, b = _digits(rng, n, 3), _digits(rng, n, 3)
        return np.where(
            style < 0.5,
            _join(head, " ", a, " ", b),
            np.where(style < 0.85, _join("+48 ", head, " ", a, " ", b), _join(head, a, b)),
        )
    if country == "GB":
        lead = np.array(list("12345789"), dtype=_SD)[rng.integers(0, 8, n)]
        rest = _digits(rng, n, 2)
        block = _join(lead, rest)
        block = np.where((block == "700") | (block == "911"), "701", block)  # not allocated
        sub = _digits(rng, n, 6)
        return np.where(style < 0.6, _join("07", block, " ", sub), _join("+44 7", block, " ", sub))
    if country == "IE":
        net = np.array(list("35679"), dtype=_SD)[rng.integers(0, 5, n)]
        a, b = _digits(rng, n, 3), _digits(rng, n, 4)
        return np.where(style < 0.6, _join("08", net, " ", a, " ", b), _join("+353 8", net, " ", a, " ", b))
    areas = np.array(["212", "312", "415", "617", "702", "303", "206", "512", "404", "305", "646", "718"], dtype=_SD)
    area = areas[rng.integers(0, areas.size, n)]
    exchange, line = _digits(rng, n, 3, low=200), _digits(rng, n, 4)
    return np.where(
        style < 0.6, _join("(", area, ") ", exchange, "-", line), _join("+1 ", area, "-", exchange, "-", line)
    )


@dataclass(frozen=True)
class _Contacts:
    first_name: StrA
    last_name: StrA
    gender: IntA  # index into Gender
    email: StrA
    email_missing: BoolA
    phone: StrA
    phone_missing: BoolA
    birth: npt.NDArray[np.datetime64]  # datetime64[D], NaT when not given


def _names(people: _People, rng: Rng) -> tuple[StrA, StrA, StrA, StrA, IntA, IntA]:
    """Native first and last names (and their Latin spellings), gender, domain."""
    n = people.locale.size
    gender = rng.choice(3, size=n, p=(0.52, 0.45, 0.03))  # f, m, unknown
    # "unknown" is what the shop knows, not what the name says.
    female = np.where(gender == 2, rng.random(n) < 0.5, gender == 0)
    first, last = np.empty(n, dtype=_SD), np.empty(n, dtype=_SD)
    first_lat, last_lat = np.empty(n, dtype=_SD), np.empty(n, dtype=_SD)
    domain = np.empty(n, dtype=np.int64)
    for loc, names in enumerate(_NAMES):
        for is_female, given, family in ((True, names.female, names.surname_f), (False, names.male, names.surname_m)):
            m = np.flatnonzero((people.locale == loc) & (female == is_female))
            g, f = _zipf_choice(rng, m.size, len(given)), _zipf_choice(rng, m.size, len(family))
            first[m] = np.asarray(given, dtype=_SD)[g]
            last[m] = np.asarray(family, dtype=_SD)[f]
            first_lat[m] = np.asarray([_ascii(x) for x in given], dtype=_SD)[g]
            last_lat[m] = np.asarray([_ascii(x) for x in family], dtype=_SD)[f]
            domain[m] = loc * 10 + rng.integers(0, len(names.domains), m.size)
    return first, last, first_lat, last_lat, gender, domain


def _emails(first: StrA, last: StrA, birth_year: IntA, domain_code: IntA, rng: Rng) -> tuple[StrA, BoolA]:
    """Emails from the names on example domains, unique, a few of them malformed."""
    n = first.size
    domains = [d for names in _NAMES for d in names.domains]
    offsets = np.cumsum([0] + [len(names.domains) for names in _NAMES])[:-1]
    d_idx = offsets[domain_code // 10] + domain_code % 10
    domain = np.asarray(domains, dtype=_SD)[d_idx]
    yy = np.strings.zfill((birth_year % 100).astype(_SD), 2)
    num = rng.integers(1, 1000, n).astype(_SD)
    initial = np.strings.slice(first, 0, 1)
    style = rng.choice(5, size=n, p=(0.38, 0.2, 0.15, 0.15, 0.12))
    local = np.select(
        [style == 0, style == 1, style == 2, style == 3],
        [_join(first, ".", last), _join(first, ".", last, yy), _join(initial, last, num), _join(first, num)],
        _join(last, "_", first),
    )
    email = _join(local, "@", domain)
    for _ in range(3):  # the address was taken: people add digits
        taken = _strings(email).duplicated().to_numpy()
        if not taken.any():
            break
        extra = rng.integers(10, 100_000, int(taken.sum())).astype(_SD)
        email[taken] = _join(local[taken], extra, "@", domain[taken])
    taken = _strings(email).duplicated().to_numpy()
    email[taken] = _join(local[taken], ".", np.flatnonzero(taken).astype(_SD), "@", domain[taken])

    # About 1.5% malformed: typos and copy-paste accidents.
    bad = np.flatnonzero(rng.random(n) < 0.015)
    kind = rng.integers(0, 5, bad.size)
    tails = np.asarray(_JUNK_EMAIL_TAILS, dtype=_SD)[rng.integers(0, len(_JUNK_EMAIL_TAILS), bad.size)]
    bare = np.asarray([d.split(".")[0] for d in domains], dtype=_SD)[d_idx[bad]]  # no TLD
    lb, db = local[bad], domain[bad]
    email[bad] = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3],
        [_join(lb, "@@", db), _join(lb, ".", db), _join(lb, "@", db, tails), _join(lb, "@", bare)],
        _join(lb, " @", db),
    )
    missing = rng.random(n) < 0.01
    return email, missing


def _birth_dates(n: int, end: date, rng: Rng) -> npt.NDArray[np.datetime64]:
    """Ages 18-75 (most 25-45), some not given, and always a few 29 February birthdays."""
    age_days = ((18 + np.minimum(rng.gamma(2.2, 8.5, n), 57.0)) * 365.2425).astype(np.int64)
    birth = np.datetime64(end, "D") - age_days.astype("timedelta64[D]")
    birth[rng.random(n) < 0.07] = np.datetime64("NaT")
    leap = np.array([y for y in range(end.year - 75, end.year - 18) if y % 4 == 0 and (y % 100 or y % 400 == 0)])
    k = min(n, -(-n // 2000) + int(rng.integers(0, 2)))  # at least one per 2,000 customers
    who = rng.choice(n, size=k, replace=False)
    years = leap[rng.integers(0, leap.size, k)]
    birth[who] = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]") + np.timedelta64(59, "D")
    return birth


def _make_contacts(people: _People, end: date, rng: Rng) -> _Contacts:
    """Names, gender, birth date, email and phone of every customer."""
    n = people.locale.size
    first, last, first_lat, last_lat, gender, domain = _names(people, rng)
    birth = _birth_dates(n, end, rng)
    year = np.where(np.isnat(birth), rng.integers(1960, 2005, n), birth.astype("datetime64[Y]").astype(np.int64) + 1970)
    email, email_missing = _emails(first_lat, last_lat, year, domain, rng)

    phone = np.empty(n, dtype=_SD)
    country = np.array([z.country for z in _ZONES])[people.zone]
    for code in ("RU", "PL", "GB", "IE", "US"):
        m = np.flatnonzero(country == code)
        phone[m] = _phones(code, m.size, rng)
    junk = np.flatnonzero(rng.random(n) < 0.01)
    phone[junk] = np.asarray(_JUNK_PHONES, dtype=_SD)[rng.integers(0, len(_JUNK_PHONES), junk.size)]
    phone_missing = rng.random(n) < 0.18
    return _Contacts(first, last, gender, email, email_missing, phone, phone_missing, birth)


@dataclass(frozen=True)
class _Consents:
    email: BoolA
    email_at: IntA
    sms: BoolA
    sms_at: IntA
    ads: BoolA  # advertising by their address (ad platforms' customer lists)
    ads_at: IntA


def _consent(has_channel: BoolA, share: float, created: IntA, span: int, rng: Rng) -> tuple[BoolA, IntA]:
    """Opt-in flags and times: mostly at sign-up, some later; none in the future."""
    n = created.size
    at = created + np.where(
        rng.random(n) < 0.65, rng.integers(1, 120, n), (rng.exponential(15.0, n) * DAY).astype(np.int64) + 1
    )
    opted = has_channel & (rng.random(n) < share) & (at < span)
    return opted, at
