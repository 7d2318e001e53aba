"""
The heartbeat protocol's grammar (L{pygmy.replication.heartbeat}), without
a connection: each line parses to its typed words, a malformed one is
refused with L{ProtocolError}, a C{VIEW} line round-trips, and C{INVALIDATE}
parses with and without its topic token, which is the same for every
spelling a search matches.  The two ends of a connection are in
C{tests/unit/test_heartbeat.py}.
"""

from __future__ import annotations

import hashlib

import pytest

from pygmy.replication.heartbeat import MAX_LINE, ProtocolError, invalidate_line, parse, topic_token, view_line

NONCE = "00112233445566778899aabbccddeeff"


# The grammar


def test_parse_typed_words():
    assert parse(b"BEAT order A 7 123 6 recovering") == ("BEAT", "order", "A", 7, 123, 6, "recovering")
    assert parse(b"SYNCED catalog B 9") == ("SYNCED", "catalog", "B", 9)
    assert parse(b"HELLO order B " + b"ab" * 32) == ("HELLO", "order", "B", "ab" * 32)
    assert parse(b"CHALLENGE " + NONCE.encode()) == ("CHALLENGE", NONCE)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"beat catalog A 1 1 1 backup",
        b"VIEW catalog 1 A",
        b"VIEW catalog 1 A B,",
        b"VIEW catalog 1 A-B -",
        b"HELLO catalog A 0123",
        b"SYNCED catalog B 12345678901234567890",
        b"VIEW catalog \xd9\xa3 A -",
    ],
)
def test_parse_refuses(line):
    with pytest.raises(ProtocolError):
        parse(line)


@pytest.mark.parametrize(
    "view",
    [("catalog", 1, "A", []), ("order", 12, None, []), ("catalog", 3, "B", ["A", "C"])],
)
def test_view_line_round_trip(view):
    assert parse(view_line(*view)) == ("VIEW", *view)
    assert view_line("catalog", 7, None, []) == b"VIEW catalog 7 - -"
    assert view_line("catalog", 7, "A", ("B", "C")) == b"VIEW catalog 7 A B,C"


# INVALIDATE and the topic token


def test_topic_token_is_the_same_for_every_spelling_a_search_matches():
    expected = hashlib.sha256("école".encode("utf-8")).hexdigest()[:32]
    assert topic_token("école") == topic_token("ÉCOLE") == topic_token("E\u0301cole") == expected
    assert topic_token("STRASSE") == topic_token("straße")
    assert topic_token("ecole") != expected
    assert topic_token("Distributed Systems") == hashlib.sha256(b"distributed systems").hexdigest()[:32]


def test_invalidate_parses_with_and_without_its_topic():
    token = topic_token("travel")
    assert parse(b"INVALIDATE 7 42") == ("INVALIDATE", 7, 42, None)
    assert parse(f"INVALIDATE 7 42 {token}".encode()) == ("INVALIDATE", 7, 42, token)
    assert parse(invalidate_line(8, 43, "Travel")) == ("INVALIDATE", 8, 43, token)


@pytest.mark.parametrize(
    "line",
    [
        b"INVALIDATE 7",
        b"INVALIDATE 7 42 " + b"a" * 31,
        b"INVALIDATE 7 42 " + b"a" * 33,
        b"INVALIDATE 7 42 " + b"A" * 32,
        b"INVALIDATE 7 42 " + b"g" * 32,
        b"INVALIDATE 7 42 travel",
        b"INVALIDATE 7 42 " + b"a" * 32 + b" x",
        b"INVALIDATE x 42 " + b"a" * 32,
    ],
)
def test_invalidate_refuses(line):
    with pytest.raises(ProtocolError):
        parse(line)


def test_the_longest_invalidate_line_fits():
    line = invalidate_line(2**63 - 1, 2**63 - 1, "\U0010ffff" * 200)
    assert len(line) + 1 <= MAX_LINE
    assert parse(line)[1:3] == (2**63 - 1, 2**63 - 1)
