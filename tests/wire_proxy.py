"""A TCP proxy in front of the test server that records every statement its clients send.

``StatementRecorder`` listens on a free loopback port and forwards each
connection to the real server byte for byte, reading the client's side of
the PostgreSQL protocol on the way: a simple ``Query`` is one statement (its
text), and so is each ``Execute`` of the extended protocol (the text of the
statement its portal was bound to: ``Parse`` names statements, ``Bind`` binds
a portal to one, so a prepared statement executed again without a new
``Parse`` is still counted, with its text). The server's answers are not
read. A client connecting through it needs ``sslmode=disable`` and
``gssencmode=disable`` (an encrypted stream cannot be read); ``dsn()`` gives
such a DSN.

What a test asserts with it is what the server was sent, whatever the client
library does on top (pool checks, prepared statements, connection setup).
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Final

from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: Protocol codes of the untyped messages a client may send first.
_SSL_REQUEST: Final = 80877103
_GSSENC_REQUEST: Final = 80877104
_CANCEL_REQUEST: Final = 80877102
#: Seconds a recorder waits for a statement it was asked to wait for.
WAIT_S: Final = 30.0


@dataclass
class _Session:
    """One client connection's protocol state: its named statements and portals."""

    statements: dict[str, str] = field(default_factory=dict)
    portals: dict[str, str] = field(default_factory=dict)


def _cstring(body: bytes, start: int) -> tuple[str, int]:
    end = body.index(b"\0", start)
    return body[start:end].decode("utf-8", "replace"), end + 1


class StatementRecorder:
    """A recording proxy to ``upstream`` (a libpq DSN of a TCP server).

    ``statements``: the text of every statement executed through it, in order.
    """

    def __init__(self, upstream: str) -> None:
        params = conninfo_to_dict(upstream)
        self.upstream = upstream
        self.target = (str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
        self.statements: list[str] = []
        self._changed = threading.Condition()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="wire-proxy", daemon=True)

    def dsn(self, **overrides: str) -> str:
        """The upstream DSN pointed at this proxy (no TLS, no GSS encryption)."""
        return make_conninfo(self.upstream, host="127.0.0.1", port=str(self.port),
                             sslmode="disable", gssencmode="disable", **overrides)

    def start(self) -> StatementRecorder:
        """Accept connections (in a thread)."""
        self._accepting.start()
        return self

    def close(self) -> None:
        """Stop accepting and close every forwarded connection."""
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        except OSError:
            pass
        self._listener.close()
        if self._accepting.is_alive():
            self._accepting.join(WAIT_S)
        for s in list(self._sockets):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(WAIT_S)

    def __enter__(self) -> StatementRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self) -> int:
        """How many statements were recorded so far."""
        with self._changed:
            return len(self.statements)

    def since(self, mark: int) -> list[str]:
        """The statements recorded after the first ``mark`` ones."""
        with self._changed:
            return list(self.statements[mark:])

    def wait_for(self, fragment: str, timeout: float = WAIT_S) -> None:
        """Block until a statement containing ``fragment`` was recorded."""
        with self._changed:
            if not self._changed.wait_for(
                    lambda: any(fragment in s for s in self.statements), timeout):
                raise TimeoutError(f"no statement with {fragment!r} within {timeout} s")

    # -- forwarding ----------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            for target, name in ((lambda c=client, s=server: self._client_side(c, s), "in"),
                                 (lambda c=client, s=server: self._pipe(s, c), "out")):
                thread = threading.Thread(target=target, name=f"wire-proxy-{name}", daemon=True)
                self._threads.append(thread)
                thread.start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _client_side(self, client: socket.socket, server: socket.socket) -> None:
        session = _Session()
        buffer = b""
        started = False
        try:
            while data := client.recv(65536):
                server.sendall(data)
                buffer += data
                while True:
                    if not started:  # length, then a protocol code; no type byte
                        if len(buffer) < 8:
                            break
                        length, code = struct.unpack("!ii", buffer[:8])
                        if len(buffer) < length:
                            break
                        buffer = buffer[length:]
                        if code == _CANCEL_REQUEST:
                            return
                        started = code not in (_SSL_REQUEST, _GSSENC_REQUEST)
                        continue
                    if len(buffer) < 5:
                        break
                    kind = buffer[:1]
                    (length,) = struct.unpack("!i", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    body, buffer = buffer[5:1 + length], buffer[1 + length:]
                    self._message(session, kind, body)
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _message(self, session: _Session, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            self._record(_cstring(body, 0)[0])
        elif kind == b"P":
            name, at = _cstring(body, 0)
            session.statements[name] = _cstring(body, at)[0]
        elif kind == b"B":
            portal, at = _cstring(body, 0)
            statement, _ = _cstring(body, at)
            session.portals[portal] = session.statements.get(statement, "?")
        elif kind == b"E":
            portal, _ = _cstring(body, 0)
            self._record(session.portals.get(portal, "?"))

    def _record(self, text: str) -> None:
        with self._changed:
            self.statements.append(text)
            self._changed.notify_all()
