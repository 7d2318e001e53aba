"""
The reference of the HTTP benchmark: a bare Klein route returning a small
JSON body, on the same Twisted, with no access log.

    python benchmarks/reference.py PORT
"""

import json
import sys

from klein import Klein
from twisted.internet import reactor
from twisted.web.server import Site

BODY = json.dumps(
    {
        "id": 1,
        "title": "How to get a good grade in 677 in 20 minutes a day",
        "topic": "distributed systems",
        "cost": "19.99",
        "stock": 1000,
    }
).encode()

app = Klein()


@app.route("/reference", methods=["GET"])
def reference(request):
    """A small JSON body, like a book."""
    request.setHeader(b"content-type", b"application/json")
    return BODY


if __name__ == "__main__":
    site = Site(app.resource())
    site.log = lambda request: None
    reactor.listenTCP(int(sys.argv[1]), site, interface="127.0.0.1")
    reactor.run()
