"""Every closed vocabulary of the engine, in one place."""

from __future__ import annotations

from enum import StrEnum


class Table(StrEnum):
    """The tables of the input data contract: seven every shop gives, and ``point_movements`` if it has them."""

    CUSTOMERS = "customers"
    PRODUCTS = "products"
    ORDERS = "orders"
    ORDER_ITEMS = "order_items"
    ORDER_EVENTS = "order_events"
    EVENTS = "events"
    STOCK_EVENTS = "stock_events"
    POINT_MOVEMENTS = "point_movements"


class Gender(StrEnum):
    FEMALE = "f"
    MALE = "m"
    UNKNOWN = "unknown"


class OrderStatus(StrEnum):
    """Status of an order, and of the events in its life."""

    PLACED = "placed"
    PROCESSING = "processing"
    PAID = "paid"
    HANDED_TO_CARRIER = "handed_to_carrier"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURNED = "returned"


class PointMovement(StrEnum):
    """What moved a customer's loyalty points besides earning them on an order (``point_movements.kind``)."""

    SPENT = "spent"  # used at checkout: always negative
    ADJUSTED = "adjusted"  # a correction or a credit by the shop: either sign


class PointsBasis(StrEnum):
    """What a points message's number is (the ``detail`` of a points occurrence)."""

    BALANCE = "balance"  # net of spending: the balance held, the points that really lapse
    EARNED = "earned"  # no spending data: points earned (in the month; on the day that now expires)


class EventType(StrEnum):
    VIEW = "view"
    CART_ADD = "cart_add"
    CART_REMOVE = "cart_remove"
    WISHLIST_ADD = "wishlist_add"
    REVIEW = "review"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class MessageKind(StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class Topic(StrEnum):
    """What a suppression stops on its channel."""

    # every message, order and service ones too: a hard bounce, a complaint, an SMS STOP, "stop everything" on
    # the preferences page, and every unsubscribe link made before links carried a topic
    ALL = "all"
    MARKETING = "marketing"  # offers and newsletters: order and service messages go on


class MailingTopic(StrEnum):
    """What a campaign is about, as the customer's preferences page names it (``Campaign.topic``)."""

    NEWS_AND_SALES = "news_and_sales"
    PERSONAL_PICKS = "personal_picks"
    BIRTHDAY_HOLIDAYS = "birthday_holidays"
    SERVICE = "service"  # order and service updates: cannot be turned off on the page


class Frequency(StrEnum):
    """How often a customer wants marketing (their preferences page)."""

    USUAL = "usual"
    WEEKLY = "weekly"  # at most one marketing message in any 7 days
    PAUSED = "paused"  # no marketing until ``paused_until``


class Pets(StrEnum):
    CAT = "cat"
    DOG = "dog"
    NONE = "none"


class Decision(StrEnum):
    SEND = "send"
    HOLDOUT = "holdout"
    DEFERRED = "deferred"
    SKIPPED = "skipped"


class SkipReason(StrEnum):
    NO_CONSENT = "no_consent"
    SUPPRESSED = "suppressed"
    NO_EMAIL = "no_email"
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    FREQUENCY_CAP = "frequency_cap"
    QUIET_HOURS = "quiet_hours"
    DUPLICATE = "duplicate"
    HOLDOUT = "holdout"
    TOO_LATE = "too_late"
    REDEEMED = "redeemed"  # the customer used the series' coupon: later steps stop
    PAUSED = "paused"  # promotions pause after a service-recovery message
    CAMPAIGN_PAUSED = "campaign_paused"  # a marketer paused the campaign (``paused_campaigns``)
    RESERVED = "reserved"  # the budget's room is kept for a higher-priority step already scheduled (``yields_to``)
    COUPON_EXPIRED = "coupon_expired"  # the step's coupon, fixed by its occasion, would be expired on the send day
    HELD_BACK = "held_back"  # a filtered replay (``loyalty backfill --campaign/--channel``) left it for its own replay
    PREFERENCE_TOPIC = "preference_topic"  # the customer turned the campaign's topic off (their preferences page)
    PREFERENCE_CHANNEL = "preference_channel"  # the customer turned marketing on the channel off
    PREFERENCE_PAUSE = "preference_pause"  # the customer paused marketing for a month


class SendStatus(StrEnum):
    """States of a send-ledger entry."""

    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"


class DeliveryOutcome(StrEnum):
    """What became of one message when its shard went out (``delivery/*.parquet``, the run's counts)."""

    SENT = "sent"  # the provider accepted it; the ledger holds its message id
    ALREADY_SENT = "already_sent"  # another run (or host) holds the key: not sent again
    UNKNOWN = "unknown"  # its answer was lost, or a crash after claiming: nobody knows; marketing never resent
    FAILED = "failed"  # refused for good (a bad address, a rejected message)
    RETRY_LATER = "retry_later"  # still transient after every backoff: the claim released for a later run
    PARKED = "parked"  # the channel's quota ran out or its kill switch is on: not attempted, claim released
    HELD_QUIET_HOURS = "held_quiet_hours"  # the customer was in quiet hours when the shard went out: unclaimed
    SUPPRESSED = "suppressed"  # the customer opted out (or bounced) after planning: dropped before the claim


class AdhocStatus(StrEnum):
    """How an ad-hoc campaign ended."""

    DRY_RUN = "dry_run"
    NOTHING_TO_SEND = "nothing_to_send"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    SENT = "sent"


class QuarantineReason(StrEnum):
    """Why an input row was set aside instead of used."""

    MISSING_VALUE = "missing_value"
    UNPARSEABLE_DATE = "unparseable_date"
    UNPARSEABLE_NUMBER = "unparseable_number"
    UNPARSEABLE_BOOL = "unparseable_bool"
    NEGATIVE_VALUE = "negative_value"
    NON_POSITIVE_QUANTITY = "non_positive_quantity"
    OUT_OF_RANGE = "out_of_range"
    DUPLICATE_ID = "duplicate_id"
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    UNKNOWN_ENUM = "unknown_enum"
    UNKNOWN_TIMEZONE = "unknown_timezone"
    INVALID_COUNTRY = "invalid_country"
    DANGLING_FOREIGN_KEY = "dangling_foreign_key"
    MALFORMED_ROW = "malformed_row"  # a CSV row with more or fewer fields than the header
    CONTROL_CHARACTERS = "control_characters"  # NUL, other control characters, U+2028/2029 in text
    INVALID_URL = "invalid_url"  # a link that is not http(s): javascript:, data:, ...
    # importer-specific reasons
    MISSING_CUSTOMER = "missing_customer"
    NON_PRODUCT_CODE = "non_product_code"
    ZERO_PRICE = "non_positive_price"
