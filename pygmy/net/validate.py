"""
Validation of everything a client can send: ids, topics, update bodies,
new books, idempotency keys and the C{after} and C{limit} of a page of the
list.  Each function returns the clean value or raises
L{BadRequest<pygmy.errors.BadRequest>} with a sentence saying what is wrong.

L{fold_topic} is the one key topics are matched by, on every replica and in
the front end's cache.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from pygmy.errors import BadRequest

MAX_ID = 2**63 - 1
MAX_TOPIC = 200
MAX_TITLE = 300
MAX_STOCK = 10**9
MAX_STOCK_DELTA = 10**9
MAX_COST = Decimal("1000000000")
MAX_KEY = 128
MAX_REQUEST_ID = 200
#: The largest and the default C{limit} of a page of C{GET /list}.
MAX_PAGE = 1000

_ID = re.compile(r"[1-9][0-9]{0,18}")
_COST = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_COUNT = re.compile(rb"0|[1-9][0-9]{0,18}")


def parse_id(text, what: str = "id") -> int:
    """
    Parse a positive integer id as it appears in a path or a JSON body.

    JSON integers are accepted as they are (booleans are not integers here).
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif isinstance(text, str) and _ID.fullmatch(text):
        value = int(text)
    else:
        raise BadRequest(f"{what} must be a positive integer.")
    if not 1 <= value <= MAX_ID:
        raise BadRequest(f"{what} must be a positive integer below 2**63.")
    return value


def parse_topic(topic) -> str:
    """A search topic: 1 to 200 characters, not only white space."""
    if not isinstance(topic, str) or not topic.strip():
        raise BadRequest("topic must not be empty.")
    if len(topic) > MAX_TOPIC:
        raise BadRequest(f"topic must be at most {MAX_TOPIC} characters.")
    return topic


def fold_topic(topic: str) -> str:
    """
    The key a topic is matched by: C{"ÉCOLE"}, C{"école"} and C{"e\u0301cole"}
    (an C{e} and a combining accent) have the same one.

    Unicode's canonical caseless match (its definition D145): Python's
    C{str.casefold} of the decomposed text, so that canonically equivalent
    spellings fold alike, kept composed (NFC).  C{"Straße"} and
    C{"STRASSE"} fold alike too, which SQLite's C{NOCASE} (ASCII only) and
    C{str.lower} do not.
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", topic).casefold())


def _text(value, what: str, limit: int) -> str:
    """A string of 1 to C{limit} characters, not only white space, that UTF-8 can encode."""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string.")
    if not value.strip():
        raise BadRequest(f"{what} must not be empty or only white space.")
    if len(value) > limit:
        raise BadRequest(f"{what} must be at most {limit} characters, not {len(value)}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} must be Unicode text (it holds a lone surrogate).") from None
    return value


def parse_cost(value) -> str:
    """
    A cost: a decimal string with at most two decimals, returned in the
    canonical two-decimal form (C{"12.5"} -> C{"12.50"}).
    """
    if not isinstance(value, str) or not _COST.fullmatch(value):
        raise BadRequest('cost must be a decimal string with at most two decimals, like "12.50".')
    amount = Decimal(value)
    if amount >= MAX_COST:
        raise BadRequest(f"cost must be below {MAX_COST}.")
    return f"{amount:.2f}"


def parse_stock_delta(value) -> int:
    """
    A stock change: a JSON integer, not a boolean, string or fraction.

    C{1.0} is refused too: DESIGN §3's JSON integer is a number written
    without a fraction, as an C{integer} of OpenAPI 3.0 (C{docs/openapi.yaml})
    is; in OpenAPI 3.1 it would be an integer.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest("stock_delta must be a JSON integer.")
    if abs(value) > MAX_STOCK_DELTA:
        raise BadRequest(f"stock_delta must be within ±{MAX_STOCK_DELTA}.")
    return value


def parse_update(body: dict) -> dict:
    """
    The body of C{POST /update/<id>}: C{cost} and/or C{stock_delta}.

    @return: a dict with the clean values of the keys present.
    """
    unknown = sorted(set(body) - {"cost", "stock_delta"})
    if unknown:
        raise BadRequest(f"Unknown field(s): {', '.join(unknown)}.")
    if not body:
        raise BadRequest("Give cost and/or stock_delta.")
    update = {}
    if "cost" in body:
        update["cost"] = parse_cost(body["cost"])
    if "stock_delta" in body:
        update["stock_delta"] = parse_stock_delta(body["stock_delta"])
    return update


def parse_stock(value) -> int:
    """A starting stock: a JSON integer from 0 to L{MAX_STOCK}, not a boolean, string or fraction."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest("stock must be a JSON integer.")
    if not 0 <= value <= MAX_STOCK:
        raise BadRequest(f"stock must be from 0 to {MAX_STOCK}.")
    return value


#: The keys of a new book, in the order of its row.
BOOK_FIELDS = ("title", "topic", "cost", "stock")


def parse_new_book(body: dict) -> dict:
    """
    The body of C{POST /books}: C{title} (1 to L{MAX_TITLE} characters),
    C{topic} (1 to L{MAX_TOPIC}), neither only white space; C{cost} as for
    C{/update} (L{parse_cost}); C{stock} a JSON integer from 0 to
    L{MAX_STOCK}.  Every key, and no other.

    @return: C{{"title", "topic", "cost", "stock"}}, clean (the cost in its
        two-decimal form).
    """
    unknown = sorted(set(body) - set(BOOK_FIELDS))
    if unknown:
        raise BadRequest(f"Unknown field(s): {', '.join(unknown)}; a book has title, topic, cost and stock.")
    missing = [field for field in BOOK_FIELDS if field not in body]
    if missing:
        raise BadRequest(f"Missing field(s): {', '.join(missing)}.")
    return {
        "title": _text(body["title"], "title", MAX_TITLE),
        "topic": _text(body["topic"], "topic", MAX_TOPIC),
        "cost": parse_cost(body["cost"]),
        "stock": parse_stock(body["stock"]),
    }


def parse_request_id(value, what: str = "request_id", limit: int = MAX_REQUEST_ID) -> str:
    """A request id or idempotency key: 1 to C{limit} visible ASCII characters."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise BadRequest(f"{what} must be visible ASCII.") from None
    if not isinstance(value, str) or len(value) > limit or not _VISIBLE_ASCII.fullmatch(value):
        raise BadRequest(f"{what} must be 1 to {limit} visible ASCII characters.")
    return value


def parse_item_call(call: dict) -> tuple[int, str]:
    """The C{item_id} and C{request_id} of one call of a batch of buys or decrements."""
    return parse_id(call.get("item_id"), "item_id"), parse_request_id(call.get("request_id"))


def parse_page(args: dict) -> tuple[int, int]:
    """
    The C{after} and C{limit} of a page of the list, from a request's
    C{args} (bytes to lists of bytes, as Twisted parses a query string).

    C{after} is an integer from 0 to 2**63 - 1 (default 0), C{limit} one
    from 1 to L{MAX_PAGE} (the default), each in decimal without sign,
    fraction or leading zero, and each given at most once.  Other
    parameters are ignored.

    @raise BadRequest: for anything else.
    """
    after = _count(args, b"after", 0, MAX_ID, 0)
    limit = _count(args, b"limit", 1, MAX_PAGE, MAX_PAGE)
    return after, limit


def _count(args: dict, name: bytes, low: int, high: int, default: int) -> int:
    """The integer query parameter C{name}, from C{low} to C{high}."""
    values = args.get(name)
    if values is None:
        return default
    what = name.decode("ascii")
    if len(values) != 1:
        raise BadRequest(f"Give {what} at most once.")
    if not _COUNT.fullmatch(values[0]) or not low <= int(values[0]) <= high:
        raise BadRequest(f"{what} must be an integer from {low} to {high}, in decimal.")
    return int(values[0])
