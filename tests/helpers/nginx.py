"""Debian's nginx in front of a comet server, configured as README.md's Production
section says (plain HTTP on a loopback port instead of 443 with TLS)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.helpers.proc import wait_until

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
STARTUP_TIMEOUT = 10.0

# The two location blocks of README.md's Production section, verbatim but for the
# upstream's address and the listen line.
CONF = """\
{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream chat {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location ~ ^/(rooms/.*/(updates|events)|rooms/(updates|events)|demo/) {{
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}
        location / {{
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


# The lines README's Production section gains for WebSockets (docs/websocket.md): the
# Upgrade and Connection headers passed on for the socket URLs, and only for them.
WEBSOCKET_MAP = """\
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
"""
WEBSOCKET_LOCATION = """\
        location ~ ^/(rooms/(.+/)?socket|demo/echo)$ {{
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_read_timeout 75s;
        }}
"""
WEBSOCKET_CONF = CONF.replace("    upstream chat", WEBSOCKET_MAP + "    upstream chat", 1).replace(
    "        location ~ ^/(rooms/", WEBSOCKET_LOCATION + "        location ~ ^/(rooms/", 1)
assert WEBSOCKET_CONF.count("$connection_upgrade") == 2, "nginx.CONF changed shape"


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
    """One nginx master (and one worker) proxying 127.0.0.1:``port`` to ``upstream``;
    a subclass may set another ``conf_template`` (the placeholders of ``CONF``)."""

    conf_template = CONF

    def __init__(self, tmp: Path, upstream: int) -> None:
        self.tmp = tmp
        self.upstream = upstream
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> Nginx:
        self.tmp.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):  # the free port may be taken before nginx binds it
            self.port = free_port()
            user = "user root;\n" if os.geteuid() == 0 else ""
            conf = self.tmp / "nginx.conf"
            conf.write_text(self.conf_template.format(user=user, tmp=self.tmp,
                                                      port=self.port, upstream=self.upstream))
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
