"""SIGTERM and SIGINT for a running worker: the first stops it gracefully, a
second ends it at once.

``ShutdownSignals`` installs the handlers on the running event loop when the
worker wants them (``Worker(install_signal_handlers=...)``: ``None`` means
"when running on the main thread"), counts the signals, and remembers the
second one so that ``run()`` can exit with the shell's convention, 128 + the
signal's number (143 for SIGTERM, 130 for SIGINT).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger("pgbatch.worker")


class ShutdownSignals:
    """The signal handling of one worker: ``stop`` on the first, ``abort`` on the second."""

    def __init__(self, wanted: bool | None, stop: Callable[[], None],
                 abort: Callable[[], None]) -> None:
        self.wanted = wanted
        self._stop = stop
        self._abort = abort
        self._count = 0
        self._handled: list[signal.Signals] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The second signal's number, once one came.
        self.exit_signal: int | None = None

    def install(self) -> None:
        """Install the handlers on the running loop (when wanted and supported there)."""
        wanted = self.wanted
        if wanted is None:
            wanted = threading.current_thread() is threading.main_thread()
        if not wanted:
            return
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._loop.add_signal_handler(sig, self.received, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not supported here
                continue
            self._handled.append(sig)

    def remove(self) -> None:
        """Remove the handlers ``install`` installed."""
        if self._loop is not None:
            for sig in self._handled:
                self._loop.remove_signal_handler(sig)
        self._handled.clear()

    def received(self, signum: int = signal.SIGTERM) -> None:
        """A signal came: the first stops gracefully, the second aborts."""
        self._count += 1
        if self._count == 1:
            log.info("%s: stopping gracefully (a second signal exits at once)",
                     signal.Signals(signum).name)
            self._stop()
        else:
            log.warning("second signal (%s): exiting now; claims will expire and be reaped",
                        signal.Signals(signum).name)
            self.exit_signal = signum
            self._abort()
