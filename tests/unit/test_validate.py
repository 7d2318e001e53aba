"""
Unit tests of L{pygmy.net.validate}: every client-supplied value is either
returned in its clean form or refused with L{BadRequest<pygmy.errors.BadRequest>}.
"""

from __future__ import annotations

import pytest

from pygmy.errors import BadRequest
from pygmy.net.validate import (
    MAX_ID,
    MAX_PAGE,
    MAX_STOCK,
    fold_topic,
    parse_cost,
    parse_id,
    parse_new_book,
    parse_page,
    parse_request_id,
    parse_stock_delta,
    parse_topic,
    parse_update,
)


@pytest.mark.parametrize(
    "given, expected",
    [("1", 1), (7, 7), ("42", 42), (str(MAX_ID), MAX_ID), (MAX_ID, MAX_ID)],
)
def test_parse_id_accepts(given, expected):
    value = parse_id(given)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    "given",
    [
        "0",
        "-1",
        "01",
        "1.5",
        "abc",
        "",
        " 1",
        "1\n",
        "\uff11",  # FULLWIDTH DIGIT ONE
        True,
        False,
        0,
        -3,
        1.0,
        None,
        2**63,
        str(2**63),
        "99999999999999999999",
    ],
)
def test_parse_id_rejects(given):
    with pytest.raises(BadRequest):
        parse_id(given)


def test_parse_id_names_the_field():
    with pytest.raises(BadRequest) as info:
        parse_id("x", "item_number")
    assert "item_number" in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize("topic", ["distributed systems", "x", "a" * 200, " padded "])
def test_parse_topic_accepts(topic):
    assert parse_topic(topic) == topic


@pytest.mark.parametrize("topic", ["", " ", "\t\n ", "a" * 201, None, 5, b"topic"])
def test_parse_topic_rejects(topic):
    with pytest.raises(BadRequest):
        parse_topic(topic)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("12.5", "12.50"),
        ("3", "3.00"),
        ("12.50", "12.50"),
        ("0.05", "0.05"),
        ("0", "0.00"),
        ("999999999.99", "999999999.99"),
        ("0999999999.99", "999999999.99"),  # ten digits, as docs/openapi.yaml allows
    ],
)
def test_parse_cost_canonicalises(given, expected):
    assert parse_cost(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "1.234",
        "-1",
        "NaN",
        "Infinity",
        "1e3",
        12.5,
        12,
        None,
        " 1",
        "1 ",
        "",
        "1.",
        ".5",
        "1,50",
        "1000000000",
        "6040941937",  # ten digits, found by schemathesis when the document allowed it
        "1\n",
        "\u0661",  # ARABIC-INDIC DIGIT ONE
    ],
)
def test_parse_cost_rejects(given):
    with pytest.raises(BadRequest):
        parse_cost(given)


@pytest.mark.parametrize("delta", [-3, 0, 5, 10**9, -(10**9)])
def test_parse_stock_delta_accepts(delta):
    assert parse_stock_delta(delta) == delta


@pytest.mark.parametrize("delta", [True, False, "5", 1.5, 1.0, -294.0, -0.0, None, 10**9 + 1, -(10**9) - 1])
def test_parse_stock_delta_rejects(delta):
    with pytest.raises(BadRequest):
        parse_stock_delta(delta)


def test_parse_update_both_keys():
    assert parse_update({"cost": "7.5", "stock_delta": -2}) == {
        "cost": "7.50",
        "stock_delta": -2,
    }


def test_parse_update_one_key():
    assert parse_update({"stock_delta": 4}) == {"stock_delta": 4}
    assert parse_update({"cost": "1"}) == {"cost": "1.00"}


def test_parse_update_empty_object():
    with pytest.raises(BadRequest):
        parse_update({})


def test_parse_update_unknown_key():
    with pytest.raises(BadRequest) as info:
        parse_update({"cost": "1.00", "price": "2.00"})
    assert "price" in info.value.message


@pytest.mark.parametrize(
    "body",
    [{"cost": 12.5}, {"stock_delta": "3"}, {"cost": "1.00", "stock_delta": True}, {"stock_delta": -294.0}],
)
def test_parse_update_bad_values(body):
    with pytest.raises(BadRequest):
        parse_update(body)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("abc-123", "abc-123"),
        (b"abc-123", "abc-123"),
        ("x", "x"),
        ("~" * 200, "~" * 200),
        ("!#$%&'()*+,./:;<=>?@[]^_`{|}", "!#$%&'()*+,./:;<=>?@[]^_`{|}"),
    ],
)
def test_parse_request_id_accepts(given, expected):
    value = parse_request_id(given)
    assert value == expected
    assert type(value) is str


@pytest.mark.parametrize(
    "given",
    [
        "",
        b"",
        "caf\u00e9",
        "caf\u00e9".encode("utf-8"),
        b"\xff",
        "a" * 201,
        b"a" * 201,
        "has space",
        b"has space",
        " lead",
        "tab\there",
        "line\n",
        "nul\x00",
        "del\x7f",
        None,
        12,
    ],
)
def test_parse_request_id_rejects(given):
    with pytest.raises(BadRequest):
        parse_request_id(given)


def test_parse_request_id_limit_and_name():
    assert parse_request_id("k" * 128, "Idempotency-Key", 128) == "k" * 128
    with pytest.raises(BadRequest) as info:
        parse_request_id("k" * 129, "Idempotency-Key", 128)
    assert "Idempotency-Key" in info.value.message
    assert "128" in info.value.message


@pytest.mark.parametrize(
    "args, expected",
    [
        ({}, (0, MAX_PAGE)),
        ({b"after": [b"0"]}, (0, 1000)),
        ({b"after": [b"7"], b"limit": [b"3"]}, (7, 3)),
        ({b"limit": [b"1"]}, (0, 1)),
        ({b"limit": [b"1000"]}, (0, 1000)),
        ({b"after": [b"9223372036854775807"]}, (2**63 - 1, 1000)),
        ({b"other": [b"x", b"y"], b"limit": [b"5"]}, (0, 5)),
    ],
)
def test_parse_page_accepts(args, expected):
    assert parse_page(args) == expected


@pytest.mark.parametrize(
    "args",
    [
        {b"limit": [b"0"]},
        {b"limit": [b"1001"]},
        {b"limit": [b"-1"]},
        {b"limit": [b"1.0"]},
        {b"limit": [b""]},
        {b"limit": [b"+5"]},
        {b"limit": [b"05"]},
        {b"limit": [b" 5"]},
        {b"limit": [b"5\n"]},
        {b"limit": [b"\xd9\xa5"]},  # ARABIC-INDIC DIGIT FIVE: int() would take it
        {b"limit": [b"5", b"5"]},
        {b"limit": [b"9" * 400]},
        {b"after": [b"-1"]},
        {b"after": [b"1.0"]},
        {b"after": [b"1e3"]},
        {b"after": [b"00"]},
        {b"after": [b"x"]},
        {b"after": [b"9223372036854775808"]},
        {b"after": [b"1" * 25]},
        {b"after": [b"1", b"2"]},
    ],
)
def test_parse_page_rejects(args):
    with pytest.raises(BadRequest):
        parse_page(args)


# New books (POST /books) and the folding of topics

BOOK = {"title": "Distributed Algorithms", "topic": "distributed systems", "cost": "42.5", "stock": 10}

#: A key taken out of L{BOOK}.
GONE = object()


def test_parse_new_book_cleans_the_cost_and_keeps_the_rest():
    assert parse_new_book(dict(BOOK)) == {**BOOK, "cost": "42.50"}
    limits = {"title": "t" * 300, "topic": "\U0001f4da" * 200, "cost": "0", "stock": MAX_STOCK}
    assert parse_new_book(limits) == {**limits, "cost": "0.00"}
    assert parse_new_book({**BOOK, "stock": 0})["stock"] == 0


@pytest.mark.parametrize(
    "change, words",
    [
        ({"title": GONE}, "Missing field(s): title."),
        ({"title": GONE, "stock": GONE}, "Missing field(s): title, stock."),
        ({"colour": "red"}, "Unknown field(s): colour"),
        ({"title": ""}, "title must not be empty"),
        ({"title": " \t\u3000"}, "title must not be empty"),
        ({"title": "t" * 301}, "title must be at most 300 characters, not 301"),
        ({"title": 5}, "title must be a string"),
        ({"title": "\ud800"}, "lone surrogate"),
        ({"topic": ""}, "topic must not be empty"),
        ({"topic": "x" * 201}, "topic must be at most 200 characters"),
        ({"topic": ["x"]}, "topic must be a string"),
        ({"cost": 12.5}, "cost must be a decimal string"),
        ({"cost": "1.234"}, "cost must be a decimal string"),
        ({"cost": "-1"}, "cost must be a decimal string"),
        ({"cost": "NaN"}, "cost must be a decimal string"),
        ({"cost": "1000000000"}, "cost must be below"),
        ({"stock": -1}, "stock must be from 0 to"),
        ({"stock": MAX_STOCK + 1}, "stock must be from 0 to"),
        ({"stock": True}, "stock must be a JSON integer"),
        ({"stock": 1.0}, "stock must be a JSON integer"),
        ({"stock": "5"}, "stock must be a JSON integer"),
        ({"stock": None}, "stock must be a JSON integer"),
    ],
)
def test_parse_new_book_refuses_with_a_clear_message(change, words):
    body = {key: value for key, value in {**BOOK, **change}.items() if value is not GONE}
    with pytest.raises(BadRequest) as info:
        parse_new_book(body)
    assert words in info.value.message


def test_parse_new_book_refuses_the_empty_object():
    with pytest.raises(BadRequest, match="Missing field"):
        parse_new_book({})


@pytest.mark.parametrize(
    "spellings",
    [
        ("école", "ÉCOLE", "Ecole".replace("E", "E\u0301"), "e\u0301cole"),
        ("straße", "STRASSE", "Strasse"),
        ("Distributed Systems", "distributed systems", "DISTRIBUTED SYSTEMS"),
        ("ΣΊΣΥΦΟΣ", "σίσυφος", "σίσυφοσ"),
    ],
)
def test_fold_topic_makes_every_caseless_spelling_one_key(spellings):
    assert len({fold_topic(topic) for topic in spellings}) == 1


def test_fold_topic_keeps_different_words_apart():
    assert fold_topic("école") != fold_topic("ecole")
    assert fold_topic("graduate school") != fold_topic("graduate  school")
