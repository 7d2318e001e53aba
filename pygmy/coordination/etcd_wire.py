"""
The messages of etcd's v3 JSON gateway, as L{pygmy.coordination.etcd_gateway}
and its users read and write them: keys and values in base64, 64-bit
numbers as JSON strings (absent: zero), the parts of range and txn answers,
the endpoint list, and the errors.  L{pygmy.coordination.etcd_gateway}
re-exports them.
"""

from __future__ import annotations

from base64 import b64decode, b64encode

from pygmy.coordination.store import ViewStoreError

#: gRPC codes that mean "this member cannot serve now; another may":
#: DEADLINE_EXCEEDED (4) and UNAVAILABLE (14), e.g. a member without a
#: leader.  An HTTP status of 500 or more means the same (a put without a
#: leader answers 500, code 2, "context deadline exceeded").
RETRY_ELSEWHERE = frozenset({4, 14})
#: The longest line a watch stream may send before it is refused.
MAX_LINE = 4 * 1024 * 1024


class EtcdError(ViewStoreError):
    """
    etcd answered with an error, or with something that is not its answer.

    @ivar code: the gRPC status code of the error (C{None} when the answer
        was not an etcd error at all).
    """

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class EtcdUnavailable(EtcdError):
    """An endpoint (or every endpoint of the list) did not answer, or could not serve now."""


def b64(text: str) -> str:
    """C{text} as the gateway sends a key or value: UTF-8, then base64."""
    return b64encode(text.encode("utf-8")).decode("ascii")


def unb64(data: str) -> str:
    """A key or value of the gateway's answer, as text."""
    return b64decode(data).decode("utf-8")


def prefix_end(prefix: str) -> str:
    """The C{range_end} of every key that starts with C{prefix} (its last byte plus one)."""
    raw = prefix.encode("utf-8")
    return b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode("ascii")


def number(message: dict, key: str) -> int:
    """
    The 64-bit number C{key} of a gateway message (a JSON string; absent
    means zero).

    @raise EtcdError: if it is not a whole number.
    """
    raw = message.get(key, "0")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise EtcdError(f"etcd answered {key}={raw!r}, not a number") from None


def revision(answer: dict) -> int:
    """The store revision in an answer's C{header}."""
    header = answer.get("header")
    return number(header, "revision") if isinstance(header, dict) else 0


def kvs(answer) -> list[dict]:
    """The C{kvs} of a range answer (absent when no key matched)."""
    kvs = answer.get("kvs", []) if isinstance(answer, dict) else []
    return [kv for kv in kvs if isinstance(kv, dict)]


def txn_response(answer: dict, index: int, kind: str):
    """The C{index}th response of a txn's answer, of C{kind} (C{response_range} ...)."""
    responses = answer.get("responses", [])
    if not isinstance(responses, list) or len(responses) <= index or not isinstance(responses[index], dict):
        raise EtcdError(f"etcd answered a txn without response {index}: {answer!r:.200}")
    return responses[index].get(kind, {})


def parse_endpoints(endpoints) -> list[str]:
    """C{http://a:2379,http://b:2379} (or a list) as a list of base URLs without a trailing slash."""
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    found = [e.strip().rstrip("/") for e in endpoints if e.strip()]
    if not found:
        raise ValueError("no etcd endpoint")
    return found
