"""
The front end's reply cache (DESIGN §7) on its own: the LRU bound and which
entry goes first, per-book invalidation of lookup, search and list entries,
the counters and C{status()}, and the rule that refuses a fill fetched
before an invalidation of a book it shows.
"""

import pytest

from pygmy.frontend import cache as cache_module
from pygmy.frontend.cache import ReplyCache
from pygmy.replication.heartbeat import topic_token


def store(cache, key, items=(), body=None):
    """Store C{key} with a fresh ticket; return what store() said."""
    return cache.store(key, body or key.encode(), items, cache.ticket())


def keys(cache):
    """The keys the cache holds now, read without touching counters or recency."""
    return set(cache._entries)


ALL = ["lookup:1", "lookup:2", "search:systems", "search:school", "list"]


def filled():
    """A cache holding a lookup, a search and the list entry of several books."""
    cache = ReplyCache(10)
    store(cache, "lookup:1", (1,))
    store(cache, "lookup:2", (2,))
    store(cache, "search:systems", [1, 3])
    store(cache, "search:school", [2, 4])
    store(cache, "list", None)
    return cache


# The bound and the order of eviction


def test_bound_holds_and_oldest_goes_first():
    cache = ReplyCache(2)
    assert [store(cache, key, (i,)) for i, key in enumerate("abc")] == [True, True, True]
    assert len(cache) == 2
    assert keys(cache) == {"b", "c"}
    assert cache.counters.evictions == 1


def test_get_refreshes_recency():
    cache = ReplyCache(2)
    store(cache, "a", (1,))
    store(cache, "b", (2,))
    assert cache.get("a") == b"a"
    store(cache, "c", (3,))
    assert keys(cache) == {"a", "c"}
    assert cache.get("b") is None
    # "a" was last used before "c" was stored, so "a" is now the oldest.
    store(cache, "d", (4,))
    assert keys(cache) == {"c", "d"}
    assert cache.counters.evictions == 2


def test_storing_a_key_again_replaces_it_without_eviction():
    cache = ReplyCache(2)
    store(cache, "a", (1,))
    store(cache, "b", (2,))
    store(cache, "a", (1,), body=b"newer")
    assert len(cache) == 2 and cache.counters.evictions == 0
    store(cache, "c", (3,))
    assert keys(cache) == {"a", "c"}
    assert cache.get("a") == b"newer"


def test_capacity_zero_stores_nothing():
    cache = ReplyCache(0)
    assert store(cache, "a", (1,)) is False
    assert store(cache, "list", None) is False
    assert len(cache) == 0
    assert cache.get("a") is None
    assert (cache.counters.evictions, cache.counters.refused_fills) == (0, 0)


# Invalidation


def test_invalidate_drops_every_entry_showing_the_book():
    cache = filled()
    cache.invalidate(1)
    assert keys(cache) == {"lookup:2", "search:school"}
    assert cache.counters.invalidations == 1


def test_invalidate_a_book_shown_only_in_the_list():
    cache = filled()
    cache.invalidate(7)
    assert keys(cache) == set(ALL) - {"list"}


def test_evicted_entry_leaves_no_trace_in_the_index():
    cache = ReplyCache(1)
    store(cache, "search:systems", [1, 2])
    store(cache, "lookup:3", (3,))
    cache.invalidate(1)
    assert keys(cache) == {"lookup:3"}
    assert cache._by_tag == {3: {"lookup:3"}}


def test_replaced_entry_is_indexed_by_its_new_books_only():
    cache = ReplyCache(5)
    store(cache, "search:x", [1])
    store(cache, "search:x", [2])
    cache.invalidate(1)
    assert "search:x" in cache._entries
    cache.invalidate(2)
    assert "search:x" not in cache._entries


# Counters and status


def test_counters_and_status():
    cache = ReplyCache(2)
    assert cache.get("a") is None
    store(cache, "a", (1,))
    assert cache.get("a") == b"a"
    assert cache.get("a") == b"a"
    store(cache, "b", (2,))
    store(cache, "c", (3,))
    ticket = cache.ticket()
    cache.invalidate(3)
    assert cache.store("lookup:3", b"old", (3,), ticket) is False
    assert cache.status() == {
        "size": 1,
        "capacity": 2,
        "hits": 2,
        "misses": 1,
        "invalidations": 1,
        "evictions": 1,
        "refused_fills": 1,
        "lease_expiries": 0,
    }


# Fills that race with a write


def test_fill_fetched_before_an_invalidation_is_refused():
    cache = ReplyCache(10)
    before = cache.ticket()
    cache.invalidate(1)
    assert cache.store("lookup:1", b"old", (1,), before) is False
    assert cache.store("search:systems", b"old", [3, 1], before) is False
    assert len(cache) == 0
    assert cache.counters.refused_fills == 2


def test_fill_fetched_after_the_invalidation_is_stored():
    cache = ReplyCache(10)
    cache.invalidate(1)
    after = cache.ticket()
    assert cache.store("lookup:1", b"new", (1,), after) is True
    assert cache.get("lookup:1") == b"new"
    assert cache.counters.refused_fills == 0


def test_later_invalidation_refuses_even_a_ticket_taken_between_two():
    cache = ReplyCache(10)
    cache.invalidate(1)
    between = cache.ticket()
    cache.invalidate(1)
    assert cache.store("lookup:1", b"old", (1,), between) is False


def test_unrelated_invalidation_refuses_only_the_list():
    cache = ReplyCache(10)
    before = cache.ticket()
    cache.invalidate(2)
    assert cache.store("lookup:1", b"one", (1,), before) is True
    assert cache.store("search:systems", b"s", [1, 3], before) is True
    assert cache.store("list", b"all", None, before) is False
    assert keys(cache) == {"lookup:1", "search:systems"}
    assert cache.counters.refused_fills == 1


@pytest.mark.parametrize("items", [(1,), None])
def test_refused_fill_keeps_the_newer_entry(items):
    """A late, stale fill must not displace what a fresher fill stored."""
    cache = ReplyCache(10)
    old = cache.ticket()
    cache.invalidate(1)
    assert cache.store("k", b"new", items, cache.ticket()) is True
    assert cache.store("k", b"old", items, old) is False
    assert cache.get("k") == b"new"


def test_clear_drops_everything_and_refuses_older_fills():
    cache = filled()
    before = cache.ticket()
    cache.clear()
    assert keys(cache) == set()
    assert cache.store("lookup:1", b"old", (1,), before) is False
    assert cache.store("list", b"old", None, before) is False
    assert store(cache, "lookup:1", (1,)) is True


# Topics: a search is tagged with its topic token, so that a new book shows


def searches():
    """A cache with two searches of one topic (two spellings), one of another, a lookup and the list."""
    cache = ReplyCache(10)
    store(cache, "search:École", [8, topic_token("École")])
    store(cache, "search:école", [8, topic_token("école")])
    store(cache, "search:travel", [7, topic_token("travel")])
    store(cache, "lookup:8", (8,))
    store(cache, "list", None)
    return cache


def test_a_topic_invalidation_drops_its_searches_in_every_case_and_the_list():
    cache = searches()
    cache.invalidate(topic_token("ÉCOLE"))
    assert keys(cache) == {"search:travel", "lookup:8"}


def test_a_search_with_no_book_yet_is_dropped_by_its_topic():
    cache = ReplyCache(10)
    store(cache, "search:nothing", [topic_token("nothing")])
    cache.invalidate(9)
    assert keys(cache) == {"search:nothing"}
    cache.invalidate(topic_token("NOTHING"))
    assert keys(cache) == set()


def test_a_search_fill_begun_before_its_topic_is_invalidated_is_refused():
    cache = ReplyCache(10)
    before = cache.ticket()
    cache.invalidate(topic_token("travel"))
    assert cache.store("search:Travel", b"old", [7, topic_token("Travel")], before) is False
    assert cache.store("lookup:7", b"seven", (7,), before) is True
    assert cache.store("search:other", b"o", [5, topic_token("other")], before) is True
    assert keys(cache) == {"lookup:7", "search:other"}


def test_book_ids_and_topic_tokens_never_meet():
    cache = ReplyCache(10)
    store(cache, "lookup:1", (1,))
    cache.invalidate("1")
    assert keys(cache) == {"lookup:1"}


def test_past_the_remembered_tags_every_older_fill_is_refused(monkeypatch):
    """A million new books do not grow the cache: it forgets, and refuses what it can no longer judge."""
    monkeypatch.setattr(cache_module, "REMEMBERED", 5)
    cache = ReplyCache(10)
    before = cache.ticket()
    for item in range(100, 120):
        cache.invalidate(item)
        assert len(cache._invalidated) <= 5
    assert cache.store("lookup:1", b"old", (1,), before) is False
    assert cache.store("lookup:2", b"new", (2,), cache.ticket()) is True
    recent = cache.ticket()
    cache.invalidate(119)
    assert cache.store("lookup:119", b"old", (119,), recent) is False
    assert cache.store("lookup:3", b"fine", (3,), recent) is True
