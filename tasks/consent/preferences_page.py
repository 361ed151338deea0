"""The preferences page's HTML and form: what ``GET /preferences`` shows and ``POST /preferences`` reads.

Plain server-rendered HTML in the link's language (ru, pl, en), no JavaScript: checkboxes for the topics
(order and service updates shown checked and disabled: they cannot be turned off) and the channels, radio
buttons for the frequency, a date field for the birthday, radio buttons for pets and gender. The page shows
only what the customer set on it before (``tasks/state/preferences.py``): never an email, a phone or a name.

The form's fields have one name each (``topic_<topic>``, ``channel_<channel>``), so a form-encoded body
parses into a plain mapping. Every field is checked (``read_form``): an unknown value or a date that is not
a date is refused with a message in the page's language, and nothing is stored.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tasks.kernel.enums import Channel, Frequency, MailingTopic, Pets
from tasks.state.preferences import GENDERS, OPTIONAL_TOPICS, Preferences

PAUSE_DAYS = 30  # "pause for a month"
EARLIEST_BIRTHDAY = date(1900, 1, 1)

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Mailing settings",
        "intro": "Choose what {shop} sends you. Changes apply from the next mailing.",
        "topics": "Topics",
        MailingTopic.NEWS_AND_SALES: "News and sales",
        MailingTopic.PERSONAL_PICKS: "Personal picks",
        MailingTopic.BIRTHDAY_HOLIDAYS: "Birthday and holiday greetings",
        MailingTopic.SERVICE: "Order and service updates",
        "service_note": "Always on: they are about your orders.",
        "channels": "Channels",
        Channel.EMAIL: "Email",
        Channel.SMS: "Text messages (SMS)",
        "channels_note": "Turning a channel off stops offers on it; order and service updates still come. "
        "To stop every message, use the unsubscribe link in the message.",
        "frequency": "How often",
        Frequency.USUAL: "As usual",
        Frequency.WEEKLY: "At most once a week",
        Frequency.PAUSED: "Pause for a month",
        "paused_until": "Paused until {day}.",
        "about": "About you",
        "about_note": "Optional: it helps us greet you on your birthday and pick what suits you.",
        "birthday": "Birthday",
        "pets": "Pets",
        Pets.CAT: "Cat",
        Pets.DOG: "Dog",
        Pets.NONE: "No pets",
        "gender": "Gender (for holiday greetings)",
        "f": "Female",
        "m": "Male",
        "unset": "Prefer not to say",
        "save": "Save",
        "saved_title": "Saved",
        "saved": "Your settings are saved. They apply from the next mailing.",
        "again": "Change the settings",
        "error_title": "Please check the settings",
        "bad_date": "The birthday is not a date we can read. Please enter it like this: 1990-04-20.",
        "bad_form": "Some of the choices could not be read. Please try again.",
        "invalid_title": "This link does not work",
        "invalid": "This settings link is not valid. Please use the link from the message.",
    },
    "ru": {
        "title": "Настройки рассылки",
        "intro": "Выберите, о чём {shop} будет вам писать. Изменения вступят в силу со следующей рассылки.",
        "topics": "Темы",
        MailingTopic.NEWS_AND_SALES: "Новости и распродажи",
        MailingTopic.PERSONAL_PICKS: "Персональные подборки",
        MailingTopic.BIRTHDAY_HOLIDAYS: "Поздравления с днём рождения и праздниками",
        MailingTopic.SERVICE: "Заказы и обслуживание",
        "service_note": "Приходят всегда: это сообщения о ваших заказах.",
        "channels": "Каналы",
        Channel.EMAIL: "Электронная почта",
        Channel.SMS: "SMS",
        "channels_note": "Если отключить канал, по нему перестанут приходить предложения, а сообщения о заказах"
        " и обслуживании будут приходить как прежде. Чтобы не получать ничего, воспользуйтесь ссылкой"
        " для отписки в сообщении.",
        "frequency": "Как часто",
        Frequency.USUAL: "Как обычно",
        Frequency.WEEKLY: "Не чаще раза в неделю",
        Frequency.PAUSED: "Пауза на месяц",
        "paused_until": "Пауза до {day}.",
        "about": "О вас",
        "about_note": "Необязательно: так мы сможем поздравить вас с днём рождения и подобрать то, что вам подходит.",
        "birthday": "Дата рождения",
        "pets": "Домашние питомцы",
        Pets.CAT: "Кошка",
        Pets.DOG: "Собака",
        Pets.NONE: "Нет питомцев",
        "gender": "Пол (для праздничных поздравлений)",
        "f": "Женский",
        "m": "Мужской",
        "unset": "Не указывать",
        "save": "Сохранить",
        "saved_title": "Сохранено",
        "saved": "Настройки сохранены и вступят в силу со следующей рассылки.",
        "again": "Изменить настройки",
        "error_title": "Проверьте настройки",
        "bad_date": "Не удалось распознать дату рождения. Укажите её, например, так: 20.04.1990.",
        "bad_form": "Не удалось прочитать выбранные настройки. Попробуйте ещё раз.",
        "invalid_title": "Ссылка не работает",
        "invalid": "Эта ссылка на настройки недействительна. Пожалуйста, воспользуйтесь ссылкой из письма.",
    },
    "pl": {
        "title": "Ustawienia wiadomości",
        "intro": "Wybierz, o czym {shop} ma do Ciebie pisać. Zmiany zaczną obowiązywać od następnej wysyłki.",
        "topics": "Tematy",
        MailingTopic.NEWS_AND_SALES: "Nowości i wyprzedaże",
        MailingTopic.PERSONAL_PICKS: "Propozycje dla Ciebie",
        MailingTopic.BIRTHDAY_HOLIDAYS: "Życzenia urodzinowe i świąteczne",
        MailingTopic.SERVICE: "Zamówienia i obsługa",
        "service_note": "Zawsze włączone: dotyczą Twoich zamówień.",
        "channels": "Kanały",
        Channel.EMAIL: "E-mail",
        Channel.SMS: "SMS",
        "channels_note": "Po wyłączeniu kanału przestaną nim przychodzić oferty, a wiadomości o zamówieniach"
        " i obsłudze będą przychodzić nadal. Aby nie otrzymywać niczego, użyj linku do wypisania się"
        " z wiadomości.",
        "frequency": "Jak często",
        Frequency.USUAL: "Jak dotychczas",
        Frequency.WEEKLY: "Najwyżej raz w tygodniu",
        Frequency.PAUSED: "Wstrzymaj na miesiąc",
        "paused_until": "Wstrzymane do {day}.",
        "about": "O Tobie",
        "about_note": "Nieobowiązkowo: dzięki temu złożymy Ci życzenia urodzinowe i dobierzemy to, co Ci pasuje.",
        "birthday": "Data urodzenia",
        "pets": "Zwierzęta",
        Pets.CAT: "Kot",
        Pets.DOG: "Pies",
        Pets.NONE: "Nie mam zwierząt",
        "gender": "Płeć (do życzeń świątecznych)",
        "f": "Kobieta",
        "m": "Mężczyzna",
        "unset": "Wolę nie podawać",
        "save": "Zapisz",
        "saved_title": "Zapisano",
        "saved": "Ustawienia zostały zapisane i będą obowiązywać od następnej wysyłki.",
        "again": "Zmień ustawienia",
        "error_title": "Sprawdź ustawienia",
        "bad_date": "Nie udało się odczytać daty urodzenia. Wpisz ją na przykład tak: 20.04.1990.",
        "bad_form": "Nie udało się odczytać wybranych ustawień. Spróbuj ponownie.",
        "invalid_title": "Ten link nie działa",
        "invalid": "Ten link do ustawień jest nieprawidłowy. Skorzystaj z linku z wiadomości.",
    },
}

STYLE = (
    "body{font-family:sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.5}"
    "h1{font-size:1.5rem;line-height:1.25}"
    "fieldset{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem 1rem}"
    "legend{font-weight:bold;padding:0 .25rem}"
    # a long label wraps beside its box, not under it
    "label{display:flex;align-items:flex-start;gap:.5rem;margin:.5rem 0}"
    "input[type=checkbox],input[type=radio]{flex:none;width:1.15rem;height:1.15rem;margin:.2rem 0 0}"
    "input[type=date]{font:inherit;padding:.4rem;max-width:100%;box-sizing:border-box}"
    ".note{color:#666;font-size:.9rem;margin:.25rem 0 .5rem}"
    ".group{font-weight:bold;margin:1rem 0 0}"
    ".error{background:#fdecea;border-left:4px solid #c33;padding:.5rem 1rem}"
    "button{margin-top:.5rem;padding:.75rem 1.5rem;font:inherit;font-weight:bold;background:#c33;color:#fff;"
    "border:0;border-radius:4px}"
)


def words_for(locale: str | None) -> dict[str, str]:
    """The page's words in the link's language (English for any other)."""
    return WORDS.get((locale or "en").split("-")[0].lower(), WORDS["en"])


def page_language(locale: str | None) -> str:
    """The ``lang`` of the page: the link's language if the page speaks it, else English."""
    lang = (locale or "en").split("-")[0].lower()
    return lang if lang in WORDS else "en"


class FormError(ValueError):
    """A field of the form that cannot be stored; ``word`` names the message the page shows."""

    def __init__(self, word: str) -> None:
        super().__init__(word)
        self.word = word


@dataclass(frozen=True)
class Draft:
    """What the form shows: a stored record, or what was just submitted (the birthday as typed)."""

    topics_on: frozenset[str] = frozenset(t.value for t in OPTIONAL_TOPICS)
    channels_on: frozenset[str] = frozenset(c.value for c in Channel)
    frequency: str = Frequency.USUAL.value
    paused_until: date | None = None
    birthday: str = ""
    pets: str = ""
    gender: str = ""

    @classmethod
    def from_record(cls, record: Preferences | None) -> Draft:
        """The form of a stored record (the defaults for a customer who never saved it: everything on)."""
        if record is None:
            return cls()
        return cls(
            topics_on=frozenset(t.value for t in OPTIONAL_TOPICS) - record.topics_off,
            channels_on=frozenset(c.value for c in Channel) - record.channels_off,
            frequency=record.frequency,
            paused_until=record.paused_until,
            birthday=record.birthday.isoformat() if record.birthday else "",
            pets=record.pets or "",
            gender=record.gender or "",
        )

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Draft:
        """What a submitted form says, unchecked (``read_form`` checks it)."""
        return cls(
            topics_on=frozenset(t.value for t in OPTIONAL_TOPICS if form.get(f"topic_{t.value}")),
            channels_on=frozenset(c.value for c in Channel if form.get(f"channel_{c.value}")),
            frequency=form.get("frequency", Frequency.USUAL.value),
            birthday=form.get("birthday", "").strip()[:32],
            pets=form.get("pets", ""),
            gender=form.get("gender", ""),
        )


def read_form(form: Mapping[str, str], customer_id: str, now: datetime, stored: Preferences | None) -> Preferences:
    """The record a submitted form asks for, every field checked.

    "Pause for a month" pauses until 30 days from today; saving the page again while paused keeps the day.

    Raises:
        FormError: an unknown choice (``bad_form``) or a birthday that is not a plausible date (``bad_date``).
    """
    draft = Draft.from_form(form)
    for name, value in form.items():
        on = name.startswith(("topic_", "channel_"))
        if on and (value != "on" or name.split("_", 1)[1] not in _SWITCHES):
            raise FormError("bad_form")
    if draft.frequency not in {f.value for f in Frequency}:
        raise FormError("bad_form")
    if draft.pets not in {"", *(p.value for p in Pets)} or draft.gender not in {"", *GENDERS}:
        raise FormError("bad_form")
    today = now.date()
    paused_until = None
    if draft.frequency == Frequency.PAUSED.value:
        still = stored is not None and stored.paused_until is not None and stored.paused_until > today
        paused_until = stored.paused_until if still and stored is not None else today + timedelta(days=PAUSE_DAYS)
    return Preferences(
        customer_id=customer_id,
        topics_off=frozenset(t.value for t in OPTIONAL_TOPICS) - draft.topics_on,
        channels_off=frozenset(c.value for c in Channel) - draft.channels_on,
        frequency=draft.frequency,
        paused_until=paused_until,
        birthday=_birthday(draft.birthday, today),
        pets=draft.pets or None,
        gender=draft.gender or None,
        updated_at=now,
    )


_SWITCHES = frozenset({*(t.value for t in OPTIONAL_TOPICS), *(c.value for c in Channel)})


def _birthday(text: str, today: date) -> date | None:
    """A birthday typed as 1990-04-20 (the date field's value) or 20.04.1990; empty: none."""
    if not text:
        return None
    try:
        if "." in text:
            day, month, year = (int(part) for part in text.split("."))
            born = date(year, month, day)
        else:
            born = date.fromisoformat(text)
    except ValueError:
        raise FormError("bad_date") from None
    if not EARLIEST_BIRTHDAY <= born <= today:
        raise FormError("bad_date")
    return born


def form_html(words: Mapping[str, str], hidden: str, draft: Draft, locale: str) -> str:
    """The page's form, filled from ``draft``; ``hidden``: the link's signed fields as hidden inputs."""

    def box(name: str, label: str, checked: bool) -> str:
        mark = " checked" if checked else ""
        return f'<label><input type="checkbox" name="{name}" value="on"{mark}>{html.escape(label)}</label>'

    def radio(name: str, value: str, label: str, chosen: str) -> str:
        mark = " checked" if value == chosen else ""
        return f'<label><input type="radio" name="{name}" value="{value}"{mark}>{html.escape(label)}</label>'

    topics = "".join(box(f"topic_{t.value}", words[t], t.value in draft.topics_on) for t in OPTIONAL_TOPICS)
    # shown, never sent: a disabled box posts nothing, and the server never reads it
    topics += (
        f'<label><input type="checkbox" checked disabled>{html.escape(words[MailingTopic.SERVICE])}</label>'
        f'<p class="note">{html.escape(words["service_note"])}</p>'
    )
    channels = "".join(box(f"channel_{c.value}", words[c], c.value in draft.channels_on) for c in Channel)
    frequency = "".join(radio("frequency", f.value, words[f], draft.frequency) for f in Frequency)
    if draft.frequency == Frequency.PAUSED.value and draft.paused_until is not None:
        day = html.escape(_day(draft.paused_until, locale))
        frequency += f'<p class="note">{html.escape(words["paused_until"]).format(day=day)}</p>'
    pets = "".join(radio("pets", p.value, words[p], draft.pets) for p in Pets)
    pets += radio("pets", "", words["unset"], draft.pets)
    genders = "".join(radio("gender", g, words[g], draft.gender) for g in GENDERS)
    genders += radio("gender", "", words["unset"], draft.gender)
    birthday = html.escape(draft.birthday, quote=True)
    return (
        f'<form method="post">{hidden}'
        f"<fieldset><legend>{html.escape(words['topics'])}</legend>{topics}</fieldset>"
        f"<fieldset><legend>{html.escape(words['channels'])}</legend>{channels}"
        f'<p class="note">{html.escape(words["channels_note"])}</p></fieldset>'
        f"<fieldset><legend>{html.escape(words['frequency'])}</legend>{frequency}</fieldset>"
        f"<fieldset><legend>{html.escape(words['about'])}</legend>"
        f'<p class="note">{html.escape(words["about_note"])}</p>'
        f'<label for="birthday" class="group">{html.escape(words["birthday"])}</label>'
        f'<input type="date" id="birthday" name="birthday" value="{birthday}" min="{EARLIEST_BIRTHDAY.isoformat()}">'
        f'<p class="group" id="pets">{html.escape(words["pets"])}</p>'
        f'<div role="radiogroup" aria-labelledby="pets">{pets}</div>'
        f'<p class="group" id="gender">{html.escape(words["gender"])}</p>'
        f'<div role="radiogroup" aria-labelledby="gender">{genders}</div></fieldset>'
        f'<button type="submit">{html.escape(words["save"])}</button></form>'
    )


def _day(day: date, locale: str) -> str:
    """A day as the page's language writes it: 20.04.2025 (ru, pl), 2025-04-20 (en)."""
    return day.strftime("%d.%m.%Y") if locale in {"ru", "pl"} else day.isoformat()
