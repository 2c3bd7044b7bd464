"""Start the comet server as a real process, wait until it serves, stop it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
# The production settings (DEBUG off) as a test or bench runs them: a real secret key,
# loopback hosts, plain HTTP (no TLS proxy in front).
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "test-" + "k9Qz2vXw7LmN4pRt8sYb3cDf6gHj1Ka5" * 2,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,[::1]",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
}
ANNOUNCE = re.compile(r"http://\[?[^\s/\]]+\]?:(\d+)/")
STARTUP_TIMEOUT = 20.0


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


class ServerProcess:
    """A comet server subprocess listening on an OS-chosen port of 127.0.0.1."""

    def __init__(self, argv: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 name: str = "server", preexec_fn: Callable[[], None] | None = None) -> None:
        self.argv = argv
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait for the announce line (it names the port), then for stats to answer."""

        def announced() -> int:
            self._check_alive()
            match = ANNOUNCE.search(self.stdout())
            return int(match[1]) if match else 0

        self.port = wait_until(announced, timeout, message=f"the announce of {self.argv}")
        wait_until(self._stats_or_none, timeout, message="the stats endpoint")

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}\n"
                               f"stdout: {self.stdout()}\nstderr: {self.stderr()[-4000:]}")

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not go (and fail the caller)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"server {self.pid} ignored SIGTERM for {timeout}s") from None

    def kill(self) -> None:
        """SIGKILL the server and its children (a reloader's child, pre-forked workers)."""
        children = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True,
                                  text=True).stdout.split()
        for pid in children:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    # -- observation -------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url("/_comet/stats"), timeout=10) as resp:
            return json.loads(resp.read())

    def _stats_or_none(self) -> dict[str, Any] | None:
        self._check_alive()
        try:
            return self.stats()
        except OSError:
            return None

    def wait_stats(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
                   message: str = "stats") -> dict[str, Any]:
        """Poll the stats until ``predicate`` holds; return them."""
        seen: list[dict[str, Any]] = []

        def check() -> dict[str, Any] | None:
            stats = self.stats()
            seen[:] = [stats]
            return stats if predicate(stats) else None

        try:
            return wait_until(check, timeout, interval=0.02, message=message)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last stats {seen[-1] if seen else None}") from None

    def rss_kib(self) -> int:
        """Resident set size of the server process (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")


def runcomet_argv(*options: str, host: str = "127.0.0.1") -> list[str]:
    """``manage.py runcomet`` on port 0 (the server announces the port it got)."""
    return [PYTHON, "manage.py", "runcomet", f"{host}:0", "--noreload", *options]


def wsgi_app_argv(app: str, *options: str) -> list[str]:
    """``python -m comet_server`` serving a plain WSGI app on port 0."""
    return [PYTHON, "-m", "comet_server", app, "127.0.0.1:0", *options]


SERVER_ENV = {"DJANGO_SETTINGS_MODULE": "tests.serverapp.settings"}


def launch(argv: list[str], log_dir: Path, name: str = "server") -> ServerProcess:
    """Start a server and wait until it serves (killed again if it never does)."""
    server = ServerProcess(argv, log_dir, env=SERVER_ENV, name=name)
    try:
        server.wait_ready()
    except BaseException:
        server.kill()
        raise
    return server
