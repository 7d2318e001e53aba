"""
Many writes at once to a running catalog primary, for integration tests:
L{write_many} sends stock increments over HTTP from several clients at a
time and fails unless every one is answered 200.
"""

from twisted.internet.defer import DeferredList, ensureDeferred

from tests.integration.load import AUTH


async def write_many(http, url, count, clients=32):
    """C{count} stock increments straight to the catalog primary."""
    import json

    remaining = iter(range(count))

    async def writer():
        for n in remaining:
            response = await http.request(
                "POST",
                f"{url}/books/{n % 7 + 1}/update",
                data=json.dumps({"stock_delta": 1, "request_id": f"bulk-{n}"}).encode(),
                headers=AUTH,
            )
            await response.content()
            assert response.code == 200, response.code

    results = await DeferredList([ensureDeferred(writer()) for _ in range(clients)], consumeErrors=True)
    failures = [f for ok, f in results if not ok]
    assert not failures, failures[0]
