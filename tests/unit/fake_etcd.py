"""
A stand-in for etcd's v3 JSON gateway in the unit tests (no sockets): a
resource for C{StubTreq} that answers each path with the answers queued for
it, which are those a real etcd 3.5.1 gave (C{data/etcd-3.5.1.json},
recorded with curl and urllib against C{pygmy.testing.Etcd}: a campaign won
and lost, stores that succeeded, met a newer view, and were fenced, the
renewal of a live and of a revoked lease, errors, the watch stream with its
first C{created} message and a C{compact_revision} cancel).
"""

import json
from collections import defaultdict, deque
from pathlib import Path

from twisted.internet.defer import fail
from twisted.internet.error import ConnectionRefusedError
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

RECORDED = json.loads((Path(__file__).parent / "data" / "etcd-3.5.1.json").read_text())


def recorded(name: str) -> tuple[int, str]:
    """The status and body etcd answered in the recording C{name}."""
    status, text = RECORDED[name]
    return status, text


def edited(name: str, *replacements: tuple[str, str]) -> str:
    """The body of the recording C{name} with each C{(old, new)} replaced (new views, revisions)."""
    text = recorded(name)[1]
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


def lines(name: str) -> list[bytes]:
    """The lines of a recorded watch stream, each with its newline."""
    return [line.encode() + b"\n" for line in recorded(name)[1].splitlines()]


class FakeEtcd(Resource):
    """
    Answers C{POST /v3/...} from per-path queues; a request with nothing
    queued is held (it never gets an answer, as from a member that froze).
    C{/v3/watch} requests are kept open in L{streams} for the test to write to.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.queues = defaultdict(deque)
        self.requests: list[tuple[str, object]] = []
        self.held = []
        self.streams = []

    def then(self, path: str, name: str | None = None, status: int = 200, text: str | None = None) -> None:
        """Queue the recording C{name} (or C{status} and C{text}) as the next answer to C{path}."""
        self.queues[path].append(recorded(name) if name else (status, text))

    def answer_held(self, name: str) -> None:
        """Answer the oldest held request with the recording C{name}."""
        request = self.held.pop(0)
        status, text = recorded(name)
        request.setResponseCode(status)
        request.write(text.encode())
        request.finish()

    def bodies(self, path: str) -> list:
        """The bodies of every request to C{path}, in order."""
        return [body for p, body in self.requests if p == path]

    def render_POST(self, request):
        """Record the request; answer it from its queue, hold it, or keep a watch open."""
        path = request.path.decode()
        body = json.loads(request.content.read() or b"null")
        self.requests.append((path, body))
        request.setHeader(b"content-type", b"application/json")
        if path == "/v3/watch":
            self.streams.append(request)
            return NOT_DONE_YET
        queue = self.queues[path]
        if not queue:
            self.held.append(request)
            return NOT_DONE_YET
        status, text = queue.popleft()
        request.setResponseCode(status)
        return text.encode()


class Unreachable:
    """
    A client that refuses the connection to every URL beginning with one of
    L{down}, and hands every other request to C{client} (a C{StubTreq}).
    """

    def __init__(self, client, down=()):
        self.client = client
        self.down = set(down)
        self.tried: list[str] = []

    def request(self, method, url, **kwargs):
        """Refuse, or pass on."""
        self.tried.append(url)
        if any(url.startswith(prefix) for prefix in self.down):
            return fail(ConnectionRefusedError("refused"))
        return self.client.request(method, url, **kwargs)
