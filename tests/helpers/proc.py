"""The one harness that runs a comet server as a real process, for tests, functional
tests and benchmarks alike.

``ServerProcess(argv, log_dir, ...).start()`` (or ``launch``) runs the command with
``--ready-fd N`` on a pipe: the server writes the port it bound and a newline to it once
it listens, so nothing parses its output. The harness reads that port with a deadline
(failing with the process's stderr if it exits or stays silent), waits for the stats
to answer, then offers the stats, RSS, logs, a restart on the same port, and a stop:
SIGTERM and wait, SIGKILL for it and its children if it does not go.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
HOST = "127.0.0.1"
STATS_PATH = "/_comet/stats"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# -- environments ----------------------------------------------------------------------------

# The production settings (DEBUG off) as a test or bench runs them: a real secret key,
# loopback hosts, plain HTTP (no TLS proxy in front).
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "test-" + "k9Qz2vXw7LmN4pRt8sYb3cDf6gHj1Ka5" * 2,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,[::1]",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
}
# The chat's abuse rules turned off, for load tests and benches whose simulated
# visitors all come from 127.0.0.1 and post in bursts, and whose guests reuse names
# across sessions: no rate limit is met and a guest name is free as soon as it is idle.
UNLIMITED_CHAT_ENV = {
    "CHAT_RATE_POST_SESSION": "1000000/1",
    "CHAT_RATE_POST_ADDRESS": "1000000/1",
    "CHAT_RATE_ROOM_ADDRESS": "1000000/1",
    "CHAT_RATE_NAME_SESSION": "1000000/1",
    "CHAT_RATE_TYPING_SESSION": "1000000/1",
    "CHAT_RATE_TYPING_ADDRESS": "1000000/1",
    "CHAT_GUEST_NAME_SECONDS": "0",
}
# The shared Redis of the tests (never restarted by them; channels are made unique).
REDIS_URL = os.environ.get("COMET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The test project of tests/serverapp (its /wait, /stream, /echo, /block views).
SERVER_ENV = {"DJANGO_SETTINGS_MODULE": "tests.serverapp.settings"}


def broker_env(url: str | None) -> dict[str, str | None]:
    """Publish through Redis at ``url``; ``None``: the in-process hub (no broker)."""
    return {"COMET_BROKER": url}


def child_env(*overlays: Mapping[str, str | None],
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a server or command: ``base`` (this process's) without
    any ``COMET_*`` variable, so a developer's shell cannot change a server's options,
    unbuffered output, then each overlay in turn (a value of ``None`` removes the name)."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith("COMET_")}
    env["PYTHONUNBUFFERED"] = "1"
    for overlay in overlays:
        for name, value in overlay.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
    return env


# -- command lines ----------------------------------------------------------------------------


def runcomet_argv(*options: str, host: str = HOST, reload: bool = False) -> list[str]:
    """``manage.py runcomet`` on port 0 (the harness learns the port it got)."""
    return [PYTHON, "manage.py", "runcomet", f"{host}:0", *([] if reload else ["--noreload"]),
            *options]


def wsgi_app_argv(app: str, *options: str, host: str = HOST) -> list[str]:
    """``python -m comet_server`` serving a plain WSGI app on port 0."""
    return [PYTHON, "-m", "comet_server", app, f"{host}:0", *options]


def manage(*args: str, env: Mapping[str, str], timeout: float = 60.0
           ) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py *args`` from the project root with ``env``; fail with its output
    if it fails."""
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=dict(env),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


_ANY_PORT = re.compile(r"^(\[[^\]]+\]|[\w.-]+):0$")  # the address argument "host:0"

# -- waiting and processes ---------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float, message: str = "condition",
               interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def _parents() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1:
            found[int(entry.name)] = (int(fields[1]), fields[0])
    return found


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``: a pre-fork master's workers."""
    return {child for child, (parent, state) in _parents().items()
            if parent == pid and state != "Z"}


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a reloader's child, pre-forked workers, theirs)."""
    table = _parents()
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _) in table.items():
            if ppid == parent and child not in found:
                found.append(child)
                todo.append(child)
    return found


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


class ServerError(AssertionError):
    """The server did not start, died, or would not stop; the message has its logs."""


# -- the server process -------------------------------------------------------------------------


class ServerProcess:
    """A server subprocess, started with ``--ready-fd`` on a pipe.

    ``argv`` should listen on port 0 (``host:0``): the port read from the pipe is kept,
    and ``start()`` after a stop (``restart()``) listens on that same port again.
    ``env`` overlays :func:`child_env` (``base_env`` replaces this process's
    environment as its base). Logs go to ``log_dir/name.stdout`` and ``.stderr``
    (``name.N.*`` for the N-th start); without ``log_dir``, to a temporary directory
    removed once the server stopped. ``ready_fd=False`` is for servers without the
    option (gunicorn): they are ready when ``port`` accepts a connection. Subclasses
    add readiness conditions in ``ready_conditions``.
    """

    def __init__(self, argv: list[str], log_dir: Path | None = None, *, name: str = "server",
                 env: Mapping[str, str | None] | None = None,
                 base_env: Mapping[str, str] | None = None, cwd: Path = ROOT,
                 preexec_fn: Callable[[], None] | None = None, ready_fd: bool = True,
                 port: int = 0, stats_path: str = STATS_PATH,
                 start_timeout: float = STARTUP_TIMEOUT,
                 stop_timeout: float = STOP_TIMEOUT) -> None:
        self.argv = list(argv)
        self.name = name
        self.env = child_env(env or {}, base=base_env)
        self.cwd = cwd
        self.preexec_fn = preexec_fn
        self.ready_fd = ready_fd
        self.port = port
        self.stats_path = stats_path
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._own_logs = log_dir is None
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"comet-{name}-")) if log_dir is None \
            else log_dir
        self._address = next((i for i, arg in enumerate(self.argv) if _ANY_PORT.match(arg)),
                             None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.stdout_path = self.log_dir / f"{name}.stdout"
        self.stderr_path = self.log_dir / f"{name}.stderr"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> Self:
        """Run the command and wait until it serves; killed again if it never does."""
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid})")
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self.starts += 1
        stem = self.name if self.starts == 1 else f"{self.name}.{self.starts}"
        self.stdout_path = self.log_dir / f"{stem}.stdout"
        self.stderr_path = self.log_dir / f"{stem}.stderr"
        argv = list(self.argv)
        if self.port and self._address is not None:  # a restart: the port it had
            argv[self._address] = argv[self._address][:-1] + str(self.port)
        read_end = write_end = -1
        if self.ready_fd:
            read_end, write_end = os.pipe()
            argv += ["--ready-fd", str(write_end)]
        try:
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    argv, cwd=self.cwd, env=self.env, stdout=out, stderr=err,
                    stdin=subprocess.DEVNULL, preexec_fn=self.preexec_fn,
                    pass_fds=(write_end,) if self.ready_fd else ())
        except BaseException:
            if self.ready_fd:
                os.close(read_end)
            raise
        finally:
            if self.ready_fd:
                os.close(write_end)  # the server holds the only write end now
        try:
            if self.ready_fd:
                self.port = self._read_port(read_end, deadline, timeout)
            else:
                self._wait_connectable(deadline, timeout)
            if self.stats_path:
                self._until(deadline, self._stats_or_none, "its stats to answer")
            self.ready_conditions(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.kill()
            raise
        finally:
            if self.ready_fd:
                os.close(read_end)
        return self

    def ready_conditions(self, timeout: float) -> None:
        """Wait for what else readiness needs, after the port and the stats (a
        subclass's hook; nothing here)."""

    def restart(self, timeout: float | None = None) -> Self:
        """Stop (SIGTERM) and start again on the same port."""
        self.terminate()
        return self.start(timeout)

    def terminate(self, timeout: float | None = None, sig: int = signal.SIGTERM) -> int | None:
        """Send ``sig`` (SIGTERM) and wait for the exit code; a server that ignores it is
        SIGKILLed with its children and the caller fails. None if never started."""
        if self.proc is None:
            return None
        timeout = self.stop_timeout if timeout is None else timeout
        if self.proc.poll() is None:
            below = descendants(self.proc.pid)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                kill_all(below)
                raise ServerError(f"{self.name} ignored {signal.Signals(sig).name} for "
                                  f"{timeout}s\n{self.logs()}") from None
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the server and every process below it (a reloader's child, workers)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        kill_all(descendants(self.proc.pid))
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        """Stop it (SIGTERM, SIGKILL if it hangs) and drop logs the harness made up."""
        try:
            self.terminate()
        finally:
            self.kill()
            if self._own_logs:
                shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- readiness ---------------------------------------------------------------------------

    def _read_port(self, fd: int, deadline: float, timeout: float) -> int:
        """The port the server writes to the ready pipe."""
        got = b""
        while not got.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerError(f"{self.name} did not tell its port within {timeout}s "
                                  f"({' '.join(self.argv)})\n{self.logs()}")
            if select.select([fd], [], [], min(left, 0.1))[0]:
                chunk = os.read(fd, 64)
                if not chunk:  # every write end closed: it exited without listening
                    with_code = self._exit_code(min(5.0, max(0.1, left)))
                    raise ServerError(f"{self.name} exited ({with_code}) before it listened "
                                      f"({' '.join(self.argv)})\n{self.logs()}")
                got += chunk
            else:
                self.check_alive()
        return int(got)

    def _exit_code(self, timeout: float) -> str:
        assert self.proc is not None
        try:
            return f"exit code {self.proc.wait(timeout)}"
        except subprocess.TimeoutExpired:
            return "still running, its ready descriptor closed"

    def _wait_connectable(self, deadline: float, timeout: float) -> None:
        def accepts() -> bool:
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        self._until(deadline, accepts, f"port {self.port} to accept")

    def _until(self, deadline: float, condition: Callable[[], Any], what: str) -> Any:
        while True:
            self.check_alive()
            value = condition()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise ServerError(f"{self.name}: timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.02)

    # -- observation --------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Fail with the logs if the server has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerError(f"{self.name} exited with {self.proc.returncode}\n{self.logs()}")

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self, tail: int = 4000) -> str:
        """The ends of this start's stdout and stderr, for failure messages."""
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def stats(self) -> dict[str, Any]:
        """The JSON stats of whichever process accepts the connection."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            conn.request("GET", self.stats_path)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise ServerError(f"{self.stats_path} answered {resp.status}: {body[:200]!r}")
        return json.loads(body)

    def _stats_or_none(self) -> dict[str, Any] | None:
        try:
            return self.stats()
        except (OSError, http.client.HTTPException):
            return None

    def wait_stats(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
                   message: str = "stats", interval: float = 0.02) -> dict[str, Any]:
        """Poll the stats until ``predicate`` holds; return them. A server too busy to
        answer is asked again; one that died fails at once."""
        seen: list[dict[str, Any]] = []

        def check() -> dict[str, Any] | None:
            self.check_alive()
            stats = self._stats_or_none()
            if stats is None:
                return None
            seen[:] = [stats]
            return stats if predicate(stats) else None

        try:
            return wait_until(check, timeout, interval=interval, message=message)
        except AssertionError as exc:
            if isinstance(exc, ServerError):
                raise
            raise AssertionError(f"{exc}; last stats {seen[-1] if seen else None}") from None

    def rss_kib(self) -> int:
        """Resident set size of the server process (Linux)."""
        return rss_kib(self.pid)


def launch(argv: list[str], log_dir: Path | None = None, name: str = "server", *,
           env: Mapping[str, str | None] | None = None, **options: Any) -> ServerProcess:
    """Start a server (by default on the tests' server app) and wait until it serves."""
    return ServerProcess(argv, log_dir, name=name, env=SERVER_ENV if env is None else env,
                         **options).start()
