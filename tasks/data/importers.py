"""Importers: map real shop exports onto the input data contract.

The first (and so far only) importer reads the UCI "Online Retail" export
(``InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,
Country``; one line per invoice line) and produces the seven contract tables of
:mod:`tasks.data.contract` plus a quarantine table.  It is pure: it reads one file,
returns frames and never looks at the clock.

Reading
    The file is read as text (UTF-8, with a Latin-1 fallback: the original UCI
    file is Latin-1).  Header names are stripped; extra columns are ignored.  A
    missing file or a missing required column raises :class:`SourceFormatError`
    (a :class:`tasks.data.contract.ContractError`; a missing file raises its subclass
    :class:`SourceNotFoundError`, which is also a ``FileNotFoundError``) naming
    the file and the column(s).  Blank lines
    are not records; ``row`` in the quarantine is the 1-based data record number
    (header not counted), which is the physical line number minus one in an
    export without blank lines or quoted line breaks.

One line, one place
    Every input line becomes exactly one ``order_items`` row or exactly one
    quarantine row (``table="online_retail"``, ``row``, ``column``, ``reason``).
    The first rule that applies gives the reason:

    1. ``CustomerID`` empty -> ``missing_customer``.  Anonymous (guest/"dotcom")
       lines cannot be attributed to a person, and a retention engine needs one.
    2. ``InvoiceNo`` or ``StockCode`` empty -> ``missing_value``.
    3. ``InvoiceDate`` not a date -> ``unparseable_date``; ``Quantity`` not an
       integer, or ``UnitPrice`` not a finite number -> ``unparseable_number``
       (checked in that column order).  Dates are ISO-8601
       (``2011-10-30 16:17:00``, as in the shared sample) or the original UCI
       spelling ``12/1/2010 8:26`` (month/day/year).
    4. ``StockCode`` not a product -> ``non_product_code``.  A product code is
       five digits optionally followed by letters (``22423``, ``85123A``,
       ``15056bl``); everything else is a fee, a service or an adjustment:
       ``POST``/``DOT`` (postage), ``C2`` (carriage), ``M``/``m`` (manual),
       ``D`` (discount), ``S`` (samples), ``B`` (bad-debt adjustment),
       ``BANK CHARGES``, ``AMAZONFEE``, ``CRUK`` (charity commission),
       ``PADS``, ``gift_0001_*`` (gift vouchers) and the ``DCGS*`` dotcom
       codes.
    5. ``UnitPrice`` <= 0 -> ``non_positive_price`` (free samples, stock
       write-offs: no revenue and no price to recommend with).
    6. ``Quantity`` = 0, or ``Quantity`` < 0 on an invoice that is not a
       cancellation -> ``non_positive_quantity`` (stock adjustments such as
       "damaged" or "thrown away").
    7. A line whose ``CustomerID`` differs from the customer of the first clean
       line of the same invoice -> ``duplicate_id`` (column ``InvoiceNo``): an
       order has one customer.  The UCI export never does this.

Cancellations
    An invoice whose number starts with ``C`` is a credit note.  It becomes an
    order of its own (``order_id`` keeps the ``C``, so it never collides with a
    sale) with status ``returned``, items with the absolute quantity, a
    positive total, and one ``order_events`` row ``returned`` at the invoice
    time.  Not ``cancelled``: in this export a C-invoice is issued *after* a
    sale that stays in the export as its own, normal invoice (goods already
    invoiced, and typically shipped, came back or were credited).  The contract's
    ``cancelled`` means an order stopped before fulfilment that never produced
    revenue, which would make the original sale look unreal.  ``returned`` is
    the status downstream code nets off revenue and reads as an unhappy signal.
    The export does not link a credit note to the invoice it reverses, so no
    rule could tell a pre-shipment cancellation from a return reliably.

Tables (all built from clean lines only)
    ``order_items``
        one per clean line, in file order: ``order_id`` = InvoiceNo,
        ``product_id`` = StockCode upper-cased (``85123a`` and ``85123A`` are
        the same product in the export), ``quantity`` = abs(Quantity),
        ``unit_price`` = UnitPrice.  Lines may repeat; they are kept.
    ``orders``
        one per invoice with at least one clean line: ``created_at`` = the
        earliest InvoiceDate of its lines (the export's local UK time, taken as
        UTC: the difference is at most one hour, during British Summer Time,
        and the export carries no zone), ``status`` = ``delivered`` (normal) or
        ``returned`` (C-invoice), ``total`` = sum(quantity * unit_price) of its
        clean lines rounded to cents, ``currency`` = ``GBP``.
    ``order_events``
        only the ``returned`` event of each C-invoice, at its ``created_at``;
        no ``delivered`` event is invented for normal invoices.
    ``customers``
        one per CustomerID with a clean line (so every customer has an order):
        ``customer_id`` = CustomerID without the float suffix (``13607.0`` ->
        ``13607``); email, phone, names, birth date and opt-in times empty
        (the export has none); ``gender`` = ``unknown``; ``locale`` = ``en``;
        ``country`` = ISO-2 code of the country the customer ordered from most
        often (ties: the one seen first) via :data:`COUNTRIES`; ``timezone`` =
        the country's zone (its most populous zone for countries with several;
        empty when the country is unknown); ``created_at`` = first invoice time;
        ``email_opt_in`` and ``sms_opt_in`` = false (no consent in the export).
    ``products``
        one per product_id: ``name`` = the most frequent stripped non-empty
        Description (ties: the one seen first; fallback: the code),
        ``category`` = the first :data:`CATEGORY_RULES` keyword rule that
        matches the name, else ``other``; ``price`` = median unit price (4
        decimals); ``currency`` = ``GBP``; ``in_stock`` = true; ``url`` and
        ``image_url`` empty; ``created_at`` = first time the product was seen.
    ``events``, ``stock_events``
        empty frames with the contract columns (the export has neither).

Frame types
    ID and text columns hold ``str`` (``None`` when empty), datetime columns are
    ``datetime64[ns, UTC]``, booleans ``bool``, quantities ``int64``, money
    ``float64``.  :meth:`ImportResult.write` writes one CSV per table with
    datetimes as ``2011-10-30T16:17:00Z`` and booleans as ``true``/``false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.data.contract import QUARANTINE_COLUMNS, SPECS, ContractError, Kind
from tasks.kernel.enums import Gender, OrderStatus, QuarantineReason, Table

__all__ = [
    "CATEGORY_RULES",
    "COUNTRIES",
    "ONLINE_RETAIL_COLUMNS",
    "SOURCE_TABLE",
    "ImportResult",
    "SourceFormatError",
    "SourceNotFoundError",
    "import_online_retail",
]

ONLINE_RETAIL_COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
"""The columns an Online Retail export must have."""

SOURCE_TABLE = "online_retail"
"""The ``table`` value of the importer's quarantine rows."""

CURRENCY = "GBP"
LOCALE = "en"

PRODUCT_CODE = r"\d{5}[A-Za-z]*"
"""A StockCode that names a product: five digits, optionally letters."""

COUNTRIES: dict[str, tuple[str | None, str | None]] = {
    # export name: (ISO 3166-1 alpha-2, IANA time zone)
    "Australia": ("AU", "Australia/Sydney"),  # several zones: the most populous
    "Austria": ("AT", "Europe/Vienna"),
    "Bahrain": ("BH", "Asia/Bahrain"),
    "Belgium": ("BE", "Europe/Brussels"),
    "Brazil": ("BR", "America/Sao_Paulo"),  # several zones: the most populous
    "Canada": ("CA", "America/Toronto"),  # several zones: the most populous
    # Jersey (JE) or Guernsey (GG): the export cannot tell which; both keep UK time.
    "Channel Islands": (None, "Europe/London"),
    "Cyprus": ("CY", "Asia/Nicosia"),
    "Czech Republic": ("CZ", "Europe/Prague"),
    "Denmark": ("DK", "Europe/Copenhagen"),
    "EIRE": ("IE", "Europe/Dublin"),
    "European Community": (None, None),  # not a country
    "Finland": ("FI", "Europe/Helsinki"),
    "France": ("FR", "Europe/Paris"),
    "Germany": ("DE", "Europe/Berlin"),
    "Greece": ("GR", "Europe/Athens"),
    "Hong Kong": ("HK", "Asia/Hong_Kong"),
    "Iceland": ("IS", "Atlantic/Reykjavik"),
    "Israel": ("IL", "Asia/Jerusalem"),
    "Italy": ("IT", "Europe/Rome"),
    "Japan": ("JP", "Asia/Tokyo"),
    "Lebanon": ("LB", "Asia/Beirut"),
    "Lithuania": ("LT", "Europe/Vilnius"),
    "Malta": ("MT", "Europe/Malta"),
    "Netherlands": ("NL", "Europe/Amsterdam"),
    "Norway": ("NO", "Europe/Oslo"),
    "Poland": ("PL", "Europe/Warsaw"),
    "Portugal": ("PT", "Europe/Lisbon"),
    "RSA": ("ZA", "Africa/Johannesburg"),
    "Saudi Arabia": ("SA", "Asia/Riyadh"),
    "Singapore": ("SG", "Asia/Singapore"),
    "Spain": ("ES", "Europe/Madrid"),
    "Sweden": ("SE", "Europe/Stockholm"),
    "Switzerland": ("CH", "Europe/Zurich"),
    "USA": ("US", "America/New_York"),  # several zones: the most populous
    "United Arab Emirates": ("AE", "Asia/Dubai"),
    "United Kingdom": ("GB", "Europe/London"),
    "Unspecified": (None, None),
}
"""Every Country name of the full UCI Online Retail data set (38 names).

A name not listed here gives an empty country and time zone."""

CATEGORY_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # (category, whole-word regex keywords on the upper-cased name); first match wins
    ("christmas", ("CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "NATIVITY")),
    ("bags", ("BAGS?",)),
    (
        "candles_lights",
        ("CANDLES?", "T-?LIGHTS?", "TEA ?LIGHTS?", "LIGHTS?", "LANTERNS?", "NIGHTLIGHTS?"),
    ),
    (
        "kitchen",
        (
            "MUGS?",
            "CUPS?",
            r"CUPCAKE\w*",
            r"TEA\w*",
            r"CAKE\w*",
            "BOWLS?",
            "PLATES?",
            "JARS?",
            "NAPKINS?",
            "BAKING",
            "KITCHEN",
            "CUTLERY",
            "LUNCH BOX",
            "PANTRY",
            "TINS?",
            "SPOONS?",
            "JUGS?",
            "TEAPOTS?",
        ),
    ),
    ("signs", ("SIGNS?", "PLAQUES?")),
    ("cards_wrap", ("CARDS?", r"WRAP\w*", "GIFT TAGS?", "RIBBONS?", "ENVELOPES?", "TISSUES?")),
    (
        "home_decor",
        (
            "FRAMES?",
            "CLOCKS?",
            "MIRRORS?",
            r"CUSHION\w*",
            "DOORMATS?",
            "DRAWERS?",
            "HOOKS?",
            "GARLANDS?",
            "DECORATIONS?",
            "VASES?",
            "WREATHS?",
        ),
    ),
)
"""Keyword rules that give a product its category; anything else is ``other``."""

OTHER_CATEGORY = "other"


class SourceFormatError(ContractError):
    """An export that cannot be imported at all: missing file, missing column, not a CSV.

    A :class:`tasks.data.contract.ContractError` (so a ``ValueError``): callers that
    handle unusable contract sources handle unusable exports the same way.
    """


class SourceNotFoundError(SourceFormatError, FileNotFoundError):
    """The export file does not exist."""


@dataclass(frozen=True)
class ImportResult:
    """The contract tables built from an export, and what was set aside."""

    frames: dict[Table, pd.DataFrame]
    """The seven contract tables every shop gives, columns exactly as in :data:`tasks.data.contract.SPECS`; no
    ``point_movements``: the export records no loyalty points, so none are written (no spending data)."""
    quarantine: pd.DataFrame
    """Columns :data:`tasks.data.contract.QUARANTINE_COLUMNS`, one row per quarantined line."""
    input_rows: int
    """Data records read from the export (header not counted)."""

    @property
    def imported_rows(self) -> int:
        """Input lines that became an ``order_items`` row."""
        return len(self.frames[Table.ORDER_ITEMS])

    def summary(self) -> dict[str, object]:
        """Counts for the CLI and the run report; JSON-serialisable."""
        by_reason = self.quarantine["reason"].astype(str).value_counts()
        ordered = sorted(by_reason.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
        return {
            "input_rows": self.input_rows,
            "imported_rows": self.imported_rows,
            "quarantined_rows": len(self.quarantine),
            "quarantined_by_reason": {str(reason): int(n) for reason, n in ordered},
            "tables": {table.value: len(frame) for table, frame in self.frames.items()},
        }

    def write(self, out_dir: Path) -> None:
        """Write ``<table>.csv`` for every contract table built and ``quarantine.csv``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        for table in self.frames:
            _to_csv_frame(table, self.frames[table]).to_csv(
                out_dir / f"{table.value}.csv", index=False, lineterminator="\n"
            )
        self.quarantine.loc[:, list(QUARANTINE_COLUMNS)].to_csv(
            out_dir / "quarantine.csv", index=False, lineterminator="\n"
        )


def import_online_retail(path: Path) -> ImportResult:
    """Map a UCI Online Retail export onto the contract (rules: module docstring)."""
    raw = _read_export(path)
    n = len(raw)

    invoice = raw["InvoiceNo"].str.strip()
    code = raw["StockCode"].str.strip()
    customer = raw["CustomerID"].str.strip().str.replace(r"^(\d+)\.0*$", r"\1", regex=True)
    at = _parse_datetime(raw["InvoiceDate"])
    quantity_num = pd.to_numeric(raw["Quantity"].str.strip(), errors="coerce")
    price = pd.to_numeric(raw["UnitPrice"].str.strip(), errors="coerce")
    quantity_ok = (
        np.isfinite(quantity_num)
        & (quantity_num == np.round(quantity_num))
        & (quantity_num.abs() < 2**53)  # exact as a float, safe as int64
    )
    price_ok = np.isfinite(price)
    cancellation = invoice.str.upper().str.startswith("C")

    rules: list[tuple[pd.Series, str, QuarantineReason]] = [
        (customer == "", "CustomerID", QuarantineReason.MISSING_CUSTOMER),
        (invoice == "", "InvoiceNo", QuarantineReason.MISSING_VALUE),
        (code == "", "StockCode", QuarantineReason.MISSING_VALUE),
        (at.isna(), "InvoiceDate", QuarantineReason.UNPARSEABLE_DATE),
        (~quantity_ok, "Quantity", QuarantineReason.UNPARSEABLE_NUMBER),
        (~price_ok, "UnitPrice", QuarantineReason.UNPARSEABLE_NUMBER),
        (~code.str.fullmatch(PRODUCT_CODE), "StockCode", QuarantineReason.NON_PRODUCT_CODE),
        (price <= 0, "UnitPrice", QuarantineReason.ZERO_PRICE),
        (
            (quantity_num == 0) | ((quantity_num < 0) & ~cancellation),
            "Quantity",
            QuarantineReason.NON_POSITIVE_QUANTITY,
        ),
    ]
    reason, column = _first_rule(rules, n)

    # Rule 7: an invoice has one customer, the one of its first clean line.
    passed = reason == ""
    invoice_customer = customer.where(passed).groupby(invoice.where(passed)).transform("first")
    conflict = passed & (customer != invoice_customer)
    reason = reason.where(~conflict, QuarantineReason.DUPLICATE_ID.value)
    column = column.where(~conflict, "InvoiceNo")
    clean = reason == ""

    quarantine = pd.DataFrame(
        {
            "table": SOURCE_TABLE,
            "row": np.arange(1, n + 1, dtype=np.int64)[~clean.to_numpy()],
            "column": column[~clean].to_numpy(dtype=object),
            "reason": reason[~clean].to_numpy(dtype=object),
        },
        columns=list(QUARANTINE_COLUMNS),
    )

    lines = pd.DataFrame(
        {
            "order_id": invoice[clean],
            "product_id": code[clean].str.upper(),
            "quantity": quantity_num[clean].abs().astype(np.int64),
            "unit_price": price[clean].astype(np.float64),
            "at": at[clean],
            "customer_id": customer[clean],
            "country_name": raw["Country"][clean].str.strip(),
            "description": raw["Description"][clean].str.strip(),
            "cancellation": cancellation[clean],
        }
    ).reset_index(drop=True)
    lines["seq"] = np.arange(len(lines), dtype=np.int64)

    orders = _orders(lines)
    frames: dict[Table, pd.DataFrame] = {
        Table.CUSTOMERS: _customers(lines),
        Table.PRODUCTS: _products(lines),
        Table.ORDERS: orders,
        Table.ORDER_ITEMS: _conform(Table.ORDER_ITEMS, lines[["order_id", "product_id", "quantity", "unit_price"]]),
        Table.ORDER_EVENTS: _order_events(orders),
        Table.EVENTS: _conform(Table.EVENTS, pd.DataFrame(index=pd.RangeIndex(0))),
        Table.STOCK_EVENTS: _conform(Table.STOCK_EVENTS, pd.DataFrame(index=pd.RangeIndex(0))),
    }
    result = ImportResult(frames=frames, quarantine=quarantine, input_rows=n)
    if result.imported_rows + len(quarantine) != n:  # pragma: no cover - an invariant
        raise RuntimeError(f"{path}: {result.imported_rows} imported + {len(quarantine)} quarantined != {n} input rows")
    return result


# --- reading ---------------------------------------------------------------


def _read_export(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: Online Retail export not found")
    frame: pd.DataFrame | None = None
    problem: str | None = None
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            problem = f"empty file, expected the header {','.join(ONLINE_RETAIL_COLUMNS)}"
        except pd.errors.ParserError as exc:
            # pandas names the line and the field counts, never the cells; the first line of its text is enough
            problem = (
                f"not a readable CSV file ({str(exc).strip().splitlines()[0] if str(exc).strip() else 'parse error'})"
            )
        break
    if problem is not None:  # raised out of the handler: pandas' error is not chained to it
        raise SourceFormatError(f"{path}: {problem}")
    if frame is None:  # pragma: no cover - latin-1 decodes any byte string
        raise SourceFormatError(f"{path}: cannot decode the file as UTF-8 or Latin-1")
    frame.columns = pd.Index([str(c).strip() for c in frame.columns])
    missing = [c for c in ONLINE_RETAIL_COLUMNS if c not in frame.columns]
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise SourceFormatError(
            f"{path}: missing required column '{missing[0]}'{more}; "
            f"an Online Retail export has {','.join(ONLINE_RETAIL_COLUMNS)}"
        )
    # Short rows leave NaN even without NA parsing; every cell is text from here on.
    return frame.loc[:, list(ONLINE_RETAIL_COLUMNS)].fillna("").astype(str)


def _parse_datetime(text: pd.Series) -> pd.Series:
    """ISO-8601, else the original UCI ``month/day/year hour:minute``; naive means UTC."""
    stripped = text.str.strip()
    iso = pd.to_datetime(stripped, format="ISO8601", errors="coerce", utc=True)
    uci = pd.to_datetime(stripped, format="%m/%d/%Y %H:%M", errors="coerce", utc=True)
    return iso.fillna(uci)


def _first_rule(rules: list[tuple[pd.Series, str, QuarantineReason]], n: int) -> tuple[pd.Series, pd.Series]:
    """Reason and column of the first rule that holds per line; "" where none holds."""
    conditions = [cond.fillna(False).to_numpy(dtype=bool) for cond, _, _ in rules]
    reasons = np.select(conditions, [r.value for _, _, r in rules], default="")
    columns = np.select(conditions, [c for _, c, _ in rules], default="")
    index = pd.RangeIndex(n)
    return pd.Series(reasons, index=index, dtype=object), pd.Series(columns, index=index, dtype=object)


# --- tables ----------------------------------------------------------------


def _orders(lines: pd.DataFrame) -> pd.DataFrame:
    lines = lines.assign(amount=lines["quantity"] * lines["unit_price"])
    orders = (
        lines.groupby("order_id", sort=False)
        .agg(
            customer_id=("customer_id", "first"),
            created_at=("at", "min"),
            cancellation=("cancellation", "first"),
            total=("amount", "sum"),
        )
        .reset_index()
    )
    orders["status"] = np.where(orders["cancellation"], OrderStatus.RETURNED.value, OrderStatus.DELIVERED.value)
    orders["total"] = orders["total"].round(2)
    orders["currency"] = CURRENCY
    orders = orders.sort_values(["created_at", "order_id"], kind="stable")
    return _conform(Table.ORDERS, orders)


def _order_events(orders: pd.DataFrame) -> pd.DataFrame:
    returned = orders[orders["status"] == OrderStatus.RETURNED.value]
    events = pd.DataFrame(
        {
            "order_id": returned["order_id"],
            "status": OrderStatus.RETURNED.value,
            "at": returned["created_at"],
        }
    )
    return _conform(Table.ORDER_EVENTS, events)


def _customers(lines: pd.DataFrame) -> pd.DataFrame:
    customers = lines.groupby("customer_id", sort=False).agg(created_at=("at", "min")).reset_index()
    country_name = _mode(lines, "customer_id", "country_name").reindex(customers["customer_id"])
    iso = {name: codes[0] for name, codes in COUNTRIES.items()}
    zone = {name: codes[1] for name, codes in COUNTRIES.items()}
    customers["country"] = _none_for_missing(country_name.map(iso))
    customers["timezone"] = _none_for_missing(country_name.map(zone))
    customers["gender"] = Gender.UNKNOWN.value
    customers["locale"] = LOCALE
    customers["email_opt_in"] = False
    customers["sms_opt_in"] = False
    customers = customers.sort_values(["created_at", "customer_id"], kind="stable")
    return _conform(Table.CUSTOMERS, customers)


def _none_for_missing(values: pd.Series) -> np.ndarray:
    """Object array with ``None`` (not NaN) in empty cells."""
    return values.astype(object).where(values.notna(), None).to_numpy(dtype=object)


def _products(lines: pd.DataFrame) -> pd.DataFrame:
    products = (
        lines.groupby("product_id", sort=False)
        .agg(created_at=("at", "min"), price=("unit_price", "median"))
        .reset_index()
    )
    described = lines[lines["description"] != ""]
    name = _mode(described, "product_id", "description").reindex(products["product_id"])
    products["name"] = name.fillna(pd.Series(name.index, index=name.index)).to_numpy(dtype=object)
    products["category"] = _category(products["name"])
    products["price"] = products["price"].round(4)
    products["currency"] = CURRENCY
    products["in_stock"] = True
    products = products.sort_values(["created_at", "product_id"], kind="stable")
    return _conform(Table.PRODUCTS, products)


def _mode(lines: pd.DataFrame, key: str, value: str) -> pd.Series:
    """Most frequent ``value`` per ``key``; ties go to the value seen first."""
    counts = (
        lines.groupby([key, value], sort=False)
        .agg(n=("seq", "size"), first=("seq", "min"))
        .reset_index()
        .sort_values([key, "n", "first"], ascending=[True, False, True], kind="stable")
        .drop_duplicates(key)
    )
    return counts.set_index(key)[value]


def _category(names: pd.Series) -> np.ndarray:
    upper = names.astype(str).str.upper()
    conditions = [
        upper.str.contains(rf"\b(?:{'|'.join(words)})\b", regex=True).to_numpy(dtype=bool)
        for _, words in CATEGORY_RULES
    ]
    return np.select(conditions, [category for category, _ in CATEGORY_RULES], default=OTHER_CATEGORY)


# --- contract shape ----------------------------------------------------------

_EMPTY_DTYPES: dict[Kind, str] = {
    Kind.DATETIME: "datetime64[ns, UTC]",
    Kind.BOOL: "bool",
    Kind.INT: "Int64",  # nullable: an empty table may gain rows with empty ratings
    Kind.FLOAT: "float64",
}


def _conform(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Exactly the contract columns of ``table``, in order, with typed empties."""
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for col in SPECS[table].columns:
        if col.name in frame.columns:
            out[col.name] = frame[col.name].set_axis(out.index)
        elif col.kind is Kind.DATETIME:
            out[col.name] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
        elif len(frame) == 0 and col.kind in _EMPTY_DTYPES:
            out[col.name] = pd.Series(index=out.index, dtype=_EMPTY_DTYPES[col.kind])
        else:
            out[col.name] = pd.Series([None] * len(out), index=out.index, dtype=object)
    return out


def _to_csv_frame(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Text for a contract CSV: ISO-8601 UTC datetimes, ``true``/``false`` booleans."""
    out = frame.loc[:, [c.name for c in SPECS[table].columns]].copy()
    for col in SPECS[table].columns:
        values = out[col.name]
        if col.kind is Kind.DATETIME and isinstance(values.dtype, pd.DatetimeTZDtype):
            out[col.name] = values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif col.kind is Kind.BOOL:
            out[col.name] = values.map({True: "true", False: "false"})
    return out
