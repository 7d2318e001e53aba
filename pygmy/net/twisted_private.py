"""
The one module of Pygmy that uses a name Twisted does not make public.

Everything else in Pygmy goes through Twisted's public API;
C{tests/unit/test_twisted_private.py} checks that no other module imports a
private Twisted name or touches one of Twisted's private attributes, and
that each name below still exists and behaves as relied on, failing with
the name when a Twisted release changes it.

Checked against Twisted 26.10.0 (L{CHECKED_AGAINST}).

L{RequestNotSent}
    Defined in C{twisted.web._newclient}, imported into
    C{twisted.web.client} but left out of that module's C{__all__}, so
    public under neither name.  An L{twisted.web.client.Agent} fails a
    request with it when a pooled connection turned out to be closed before
    the request could be written (after one retry for idempotent methods,
    at once for a C{POST}); it derives from no public error.  Without it,
    such a failure would escape L{pygmy.net.remote.Remote} as an unexpected
    error instead of L{pygmy.net.remote.ReplicaDown}.

What used to be here and is public now: C{ResponseNeverReceived} is
L{twisted.web.client.ResponseNeverReceived}; the quiet, C{TCP_NODELAY}
connections of the pool are made by L{pygmy.net.remote.QuietEndpoint} (the
factory's public C{noisy}, the transport's public C{setTcpNoDelay}) instead
of a subclass of C{HTTPConnectionPool}'s private C{_factory}; and
L{pygmy.net.remote.Endpoints} builds public endpoints itself instead of
falling back to C{Agent._endpointFactory}.
"""

from twisted.web._newclient import RequestNotSent

#: The Twisted release the names above were last checked against.
CHECKED_AGAINST = "26.10.0"

__all__ = ["CHECKED_AGAINST", "RequestNotSent"]
