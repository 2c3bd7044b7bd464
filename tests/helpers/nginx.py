"""Debian's nginx in front of a comet server, configured as docs/deployment.md says:
its ``nginx`` block is read from the document itself (so the document cannot rot),
with plain HTTP on loopback ports instead of 443 with TLS and this test's server as
the only upstream."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.helpers.proc import ROOT, wait_until

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
STARTUP_TIMEOUT = 10.0
DEPLOYMENT = ROOT / "docs" / "deployment.md"

# What the test adds around the documented lines (they go in nginx's http block).
WRAPPER = """\
{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{documented}
}}
"""


def without_websocket(conf: str) -> str:
    """``conf`` with no Upgrade passed on (what nginx does without the map lines)."""
    conf = re.sub(r"map \$http_upgrade \$connection_upgrade \{[^}]*\}\n?", "", conf)
    return re.sub(r"\n?\s*location [^{]*socket[^{]*\{[^}]*\}\n?", "\n", conf)


def documented_config(path: Path = DEPLOYMENT) -> str:
    """The first ```nginx block of the deployment document, as written."""
    match = re.search(r"^```nginx\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)
    if match is None:
        raise AssertionError(f"{path} has no nginx block")
    return match.group(1)


def local_config(upstream: int, listen: Sequence[str]) -> str:
    """The documented block with ``listen`` lines for ``host:port`` addresses (no TLS)
    and ``127.0.0.1:upstream`` as the upstream's only server."""
    text = documented_config()
    lines, count = re.subn(r"^(\s*)listen [^;]*;.*$",
                           lambda m: "\n".join(f"{m.group(1)}listen {a};" for a in listen),
                           text, flags=re.MULTILINE)
    if count != 1:
        raise AssertionError(f"expected one listen line in the documented block, got {count}")

    def one_server(match: re.Match[str]) -> str:
        body = re.sub(r"server [^;{}]+;", "", match.group(2))
        return f"{match.group(1)}server 127.0.0.1:{upstream}; {body.strip()} }}"

    lines, count = re.subn(r"(upstream chat \{\s*)([^}]*)\}", one_server, lines)
    if count != 1:
        raise AssertionError("expected one `upstream chat` in the documented block")
    return lines


def available() -> bool:
    return Path(NGINX).exists() or shutil.which(NGINX) is not None


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Nginx:
    """One nginx master (and one worker) with the documented configuration, listening
    on ``port`` of each of ``hosts`` and proxying to 127.0.0.1:``upstream``."""

    def __init__(self, tmp: Path, upstream: int, hosts: Sequence[str] = ("127.0.0.1",)) -> None:
        self.tmp = tmp
        self.upstream = upstream
        self.hosts = tuple(hosts)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def conf(self) -> str:
        user = "user root;\n" if os.geteuid() == 0 else ""
        documented = local_config(self.upstream, [f"{h}:{self.port}" for h in self.hosts])
        return WRAPPER.format(user=user, tmp=self.tmp, documented=documented)

    def start(self) -> Nginx:
        self.tmp.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):  # the free port may be taken before nginx binds it
            self.port = free_port()
            conf = self.tmp / "nginx.conf"
            conf.write_text(self.conf())
            with open(self.tmp / "nginx.stderr", "ab") as err:
                self.proc = subprocess.Popen(
                    [NGINX, "-p", str(self.tmp), "-e", str(self.tmp / "error.log"),
                     "-c", str(conf), "-g", "daemon off;"],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            try:
                wait_until(lambda: self.proc.poll() is not None or _accepts(self.port),
                           STARTUP_TIMEOUT, message="nginx to listen")
            except AssertionError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return self
            if attempt == 2 or "Address already in use" not in self.error_log():
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n"
                                   f"{self.error_log()[-3000:]}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT)  # graceful: the worker goes with the master
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(5)

    def error_log(self) -> str:
        path = self.tmp / "error.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        stderr = self.tmp / "nginx.stderr"
        return text + (stderr.read_text(errors="replace") if stderr.exists() else "")

    def access_log(self) -> list[str]:
        path = self.tmp / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []
