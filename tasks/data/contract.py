"""The input data contract: seven typed tables, one optional one, validation and quarantine.

Every input row ends in exactly one of three places: the clean frame, the
quarantine table (with table, row, column and reason), or the invisible future
(its time is after ``as_of``).  ``clean + quarantined + future == input`` holds
per table and is checked on every run.

An optional table (``point_movements``) may be absent: the shop keeps no such
records.  Absent is not empty: no ``point_movements`` file means no spending data
(points messages then say what was earned, never a balance); an empty file means
nobody spent or was adjusted anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tasks.kernel.enums import EventType, Gender, OrderStatus, PointMovement, Table


class Kind(StrEnum):
    """How a column is parsed."""

    ID = "id"  # non-empty string, stripped
    STR = "str"  # free text: tabs and line breaks become a space; other control characters are refused
    URL = "url"  # an http(s) link
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"  # stored as UTC; naive values are taken as UTC
    DATE = "date"
    ENUM = "enum"
    EMAIL = "email"
    PHONE = "phone"  # normalised to E.164 with the row's country
    TIMEZONE = "timezone"
    COUNTRY = "country"
    CURRENCY = "currency"
    LOCALE = "locale"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True  # the column must exist in the file
    nullable: bool = False  # an empty cell is allowed
    values: tuple[str, ...] = ()  # allowed values for ENUM
    min_value: float | None = None  # inclusive lower bound for numbers
    max_value: float | None = None  # inclusive upper bound for numbers
    positive: bool = False  # strictly greater than zero
    default: str | None = None  # value for an empty cell of a nullable column


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: Table
    ref_column: str


@dataclass(frozen=True)
class BoundWhen:
    """An upper bound on a number only on the rows where another column has a value; above it is out_of_range."""

    column: str
    max_value: float
    when_column: str
    when_value: str


@dataclass(frozen=True)
class TableSpec:
    table: Table
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()  # unique key; duplicates after the first are quarantined
    time_column: str | None = None  # point-in-time: rows after as_of are invisible
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)
    bounds_when: tuple[BoundWhen, ...] = ()  # checked after every column parsed
    optional: bool = False  # the file may be absent: the shop keeps no such records (not the same as none)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


_ORDER_STATUSES = tuple(s.value for s in OrderStatus)
_EVENT_STATUSES = tuple(s.value for s in OrderStatus if s is not OrderStatus.PLACED)

SPECS: dict[Table, TableSpec] = {
    Table.CUSTOMERS: TableSpec(
        Table.CUSTOMERS,
        (
            Column("customer_id", Kind.ID),
            Column("email", Kind.EMAIL, nullable=True),
            Column("phone", Kind.PHONE, nullable=True),
            Column("first_name", Kind.STR, nullable=True),
            Column("last_name", Kind.STR, nullable=True),
            Column("gender", Kind.ENUM, nullable=True, values=tuple(g.value for g in Gender), default="unknown"),
            Column("birth_date", Kind.DATE, nullable=True),
            Column("locale", Kind.LOCALE, nullable=True, default="en"),
            Column("timezone", Kind.TIMEZONE, nullable=True, default="UTC"),
            Column("country", Kind.COUNTRY, nullable=True),
            Column("created_at", Kind.DATETIME),
            Column("email_opt_in", Kind.BOOL, nullable=True, default="false"),
            Column("email_opt_in_at", Kind.DATETIME, nullable=True),
            Column("sms_opt_in", Kind.BOOL, nullable=True, default="false"),
            Column("sms_opt_in_at", Kind.DATETIME, nullable=True),
            # Agreed to be shown ads by their address (hashed audiences for ad platforms, tasks/report/audiences.py).
            # Optional: a shop that does not ask exports nobody (absent = no); a bad cell is emptied, i.e. no.
            Column("ads_opt_in", Kind.BOOL, required=False, nullable=True, default="false"),
            Column("ads_opt_in_at", Kind.DATETIME, required=False, nullable=True),
        ),
        key=("customer_id",),
        time_column="created_at",
    ),
    Table.PRODUCTS: TableSpec(
        Table.PRODUCTS,
        (
            Column("product_id", Kind.ID),
            Column("name", Kind.STR),
            Column("category", Kind.STR, nullable=True, default="other"),
            Column("price", Kind.FLOAT, min_value=0.0),
            Column("currency", Kind.CURRENCY),
            Column("in_stock", Kind.BOOL, nullable=True, default="true"),
            Column("url", Kind.URL, nullable=True),
            Column("image_url", Kind.URL, nullable=True),
            Column("created_at", Kind.DATETIME),
        ),
        key=("product_id",),
        time_column="created_at",
    ),
    Table.ORDERS: TableSpec(
        Table.ORDERS,
        (
            Column("order_id", Kind.ID),
            Column("customer_id", Kind.ID),
            Column("created_at", Kind.DATETIME),
            Column("status", Kind.ENUM, values=_ORDER_STATUSES),
            Column("total", Kind.FLOAT, min_value=0.0),
            Column("currency", Kind.CURRENCY),
        ),
        key=("order_id",),
        time_column="created_at",
        foreign_keys=(ForeignKey("customer_id", Table.CUSTOMERS, "customer_id"),),
    ),
    Table.ORDER_ITEMS: TableSpec(
        Table.ORDER_ITEMS,
        (
            Column("order_id", Kind.ID),
            Column("product_id", Kind.ID),
            Column("quantity", Kind.INT, positive=True),
            Column("unit_price", Kind.FLOAT, min_value=0.0),
        ),
        foreign_keys=(
            ForeignKey("order_id", Table.ORDERS, "order_id"),
            ForeignKey("product_id", Table.PRODUCTS, "product_id"),
        ),
    ),
    Table.ORDER_EVENTS: TableSpec(
        Table.ORDER_EVENTS,
        (
            Column("order_id", Kind.ID),
            Column("status", Kind.ENUM, values=_EVENT_STATUSES),
            Column("at", Kind.DATETIME),
        ),
        time_column="at",
        foreign_keys=(ForeignKey("order_id", Table.ORDERS, "order_id"),),
    ),
    Table.EVENTS: TableSpec(
        Table.EVENTS,
        (
            Column("customer_id", Kind.ID),
            Column("product_id", Kind.ID),
            Column("type", Kind.ENUM, values=tuple(t.value for t in EventType)),
            Column("at", Kind.DATETIME),
            Column("rating", Kind.INT, required=False, nullable=True, min_value=1, max_value=5),
            Column("text", Kind.STR, required=False, nullable=True),
        ),
        time_column="at",
        foreign_keys=(
            ForeignKey("customer_id", Table.CUSTOMERS, "customer_id"),
            ForeignKey("product_id", Table.PRODUCTS, "product_id"),
        ),
    ),
    Table.STOCK_EVENTS: TableSpec(
        Table.STOCK_EVENTS,
        (
            Column("product_id", Kind.ID),
            Column("in_stock", Kind.BOOL),
            Column("at", Kind.DATETIME),
        ),
        time_column="at",
        foreign_keys=(ForeignKey("product_id", Table.PRODUCTS, "product_id"),),
    ),
    # Loyalty points that moved other than by earning on an order (earning is the shop's rule applied to
    # orders, LOYALTY_POINTS_PER_UNIT): ``points`` is the signed change to the balance. ``spent`` (at
    # checkout, ``order_id`` the order paid with them) is never positive; ``adjusted`` (a correction, a
    # goodwill credit, spent points given back) is either sign. Without this table the shop gives no
    # spending data, and no balance is known.
    Table.POINT_MOVEMENTS: TableSpec(
        Table.POINT_MOVEMENTS,
        (
            Column("movement_id", Kind.ID),
            Column("customer_id", Kind.ID),
            Column("at", Kind.DATETIME),
            Column("kind", Kind.ENUM, values=tuple(k.value for k in PointMovement)),
            Column("points", Kind.INT),
            Column("order_id", Kind.ID, required=False, nullable=True),
        ),
        key=("movement_id",),
        time_column="at",
        foreign_keys=(
            ForeignKey("customer_id", Table.CUSTOMERS, "customer_id"),
            ForeignKey("order_id", Table.ORDERS, "order_id"),
        ),
        bounds_when=(BoundWhen("points", 0, "kind", PointMovement.SPENT.value),),
        optional=True,
    ),
}

# Tables in an order where every foreign key points to an earlier table.
LOAD_ORDER: tuple[Table, ...] = (
    Table.CUSTOMERS,
    Table.PRODUCTS,
    Table.ORDERS,
    Table.ORDER_ITEMS,
    Table.ORDER_EVENTS,
    Table.EVENTS,
    Table.STOCK_EVENTS,
    Table.POINT_MOVEMENTS,
)

QUARANTINE_COLUMNS = ("table", "row", "column", "reason")


class ContractError(ValueError):
    """A source is unusable as a whole: a missing file (of a table that is not optional) or a missing required column.

    The message is one line that names the file and, where it applies, the column.
    """


def check_columns(spec: TableSpec, columns: list[str], source: str) -> None:
    """Raise ContractError naming the file and the first missing required column."""
    missing = [c for c in spec.required_columns if c not in columns]
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise ContractError(f"{source}: missing required column '{missing[0]}'{more}")
