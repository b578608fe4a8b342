"""Serving the app from a thread of the current process (tests, the B9 benchmark).

``BackgroundServer`` runs uvicorn on a socket it binds itself (a free
loopback port by default), so the port is known before the server starts,
and returns once the app's lifespan startup is over (its pool is open).
``pgbatch web`` does not use it: it runs uvicorn in the foreground.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette

#: Seconds to wait for the server to start or stop.
WAIT_S: Final = 30.0


class _Server(uvicorn.Server):
    """A uvicorn server that says when its startup (the app's lifespan) is over."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


class BackgroundServer:
    """``app`` served by uvicorn in a thread; ``url`` once :meth:`start` returned."""

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int = 0,
                 root_path: str = "", **uvicorn_kw: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = _Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                              root_path=root_path, **uvicorn_kw))
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self.sock])),
            name=f"pgbatch-web-{self.port}")

    def start(self) -> BackgroundServer:
        """Start serving; ``RuntimeError`` when the app did not start (its error is logged)."""
        self._thread.start()
        if not self._server.ready.wait(WAIT_S) or not self._server.started:
            self.stop()
            raise RuntimeError("the web server did not start (see the log)")
        return self

    def stop(self) -> None:
        """Stop (the lifespan's shutdown closes the pool) and join the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(WAIT_S)
        self.sock.close()
        if self._thread.is_alive():
            raise RuntimeError("the web server thread did not stop")

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
