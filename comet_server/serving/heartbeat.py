"""A pre-fork worker's side of supervision: heartbeats, and leaving with its master.

The master hands each worker the write end of a pipe of its own.  ``Heartbeat`` writes
one byte to it every ``timeout / 4`` seconds from a timer on the worker's event loop:
a loop blocked by a view (``time.sleep(1000)``) stops beating, and the master kills
the worker once its last beat is older than ``timeout``.

A worker must not outlive its master (nobody would supervise or stop it): on Linux
``prctl(PR_SET_PDEATHSIG, SIGTERM)`` has the kernel send it SIGTERM (a drain) when
the master dies, and every beat also compares ``getppid()`` with the master's pid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from comet_server.serving.server import CometServer

log = logging.getLogger("comet_server.serving.heartbeat")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def set_parent_death_signal(signum: int) -> bool:
    """Have the kernel send ``signum`` to this process when its parent dies (Linux);
    False where that is not available (the heartbeat's getppid check remains)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class Heartbeat:
    """Beat on ``fd`` every ``timeout / 4`` seconds while the loop runs; when the
    parent is no longer ``master_pid``, drain the server (as SIGTERM would)."""

    def __init__(self, fd: int, timeout: float, master_pid: int) -> None:
        self.fd = fd
        self.interval = timeout / 4
        self.master_pid = master_pid
        self.orphaned = False
        os.set_blocking(fd, False)

    def start(self, server: CometServer) -> None:
        """Beat now, then on a timer of the server's loop (call on the loop's thread)."""
        self._server = server
        self.beat()

    def beat(self) -> None:
        if os.getppid() != self.master_pid:
            if not self.orphaned:
                self.orphaned = True
                log.warning("worker %d: master %d is gone; stopping", os.getpid(),
                            self.master_pid)
                if not self._server.stopping:  # PR_SET_PDEATHSIG may have started it
                    self._server.shutdown()
        else:
            try:
                os.write(self.fd, b".")
            except (BlockingIOError, InterruptedError):
                pass  # the master has not read the last ones yet: it knows we live
            except OSError:
                pass  # the master closed its end (it is going away)
        self._server.loop.call_later(self.interval, self.beat)
