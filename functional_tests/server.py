"""Run the chat on ``runcomet`` as a real subprocess, as a person would deploy it.

The tests talk to it over HTTP only (browsers, ``requests``) and post from outside
with ``manage.py post_message``, so the page's long-poll is tested end to end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
ANNOUNCE = re.compile(r"Starting comet server at http://127\.0\.0\.1:(\d+)/")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
REDIS_URL = "redis://127.0.0.1:6379/0"


def wait_for(condition: Callable[[], Any], timeout: float, message: str) -> Any:
    """Selenium's explicit wait, without a browser: for processes and HTTP endpoints."""
    return WebDriverWait(None, timeout, poll_frequency=0.05,
                         ignored_exceptions=(requests.RequestException,)).until(
        lambda _: condition(), message)


def chat_env(db_path: Path, broker: str = "") -> dict[str, str]:
    """Environment of every server and command of one test database."""
    env = {k: v for k, v in os.environ.items() if k not in ("COMET_BROKER", "DATABASE_URL")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "DJANGO_DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    })
    if broker:
        env["COMET_BROKER"] = broker
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 60.0) -> str:
    """Run ``manage.py`` with the test database; fail with its output if it fails."""
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result.stdout


class ChatServer:
    """One ``runcomet`` process; ``restart`` brings it back on the same port and DB."""

    def __init__(self, db_path: Path, log_dir: Path, name: str = "chat",
                 broker: str = "") -> None:
        self.db_path = db_path
        self.log_dir = log_dir
        self.name = name
        self.env = chat_env(db_path, broker)
        self.port = 0  # 0 lets the OS choose the first time; restarts reuse it
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # -- lifecycle ----------------------------------------------------------------

    def migrate(self) -> None:
        manage(self.env, "migrate", "--noinput")

    def start(self) -> ChatServer:
        """Start and wait until the announce line is out and stats answer."""
        self.starts += 1
        self.stdout_path = self.log_dir / f"{self.name}.{self.starts}.stdout"
        self.stderr_path = self.log_dir / f"{self.name}.{self.starts}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, "manage.py", "runcomet", f"127.0.0.1:{self.port}", "--noreload"],
                cwd=ROOT, env=self.env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _announced_port(self) -> int:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.logs()}")
        match = ANNOUNCE.search(self.stdout_path.read_text(errors="replace"))
        return int(match[1]) if match else 0

    def _wait_ready(self) -> None:
        try:
            self.port = wait_for(self._announced_port, START_TIMEOUT, "the announce line")
            wait_for(lambda: requests.get(self.url("/_comet/stats"), timeout=5).ok,
                     START_TIMEOUT, "the stats endpoint")
        except TimeoutException as exc:
            raise AssertionError(f"{self.name} not ready: {exc.msg}\n{self.logs()}") from None

    def stop(self) -> None:
        """SIGTERM and wait, as an operator would; SIGKILL only if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT}s") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> ChatServer:
        self.stop()
        return self.start()

    # -- use ------------------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def logs(self) -> str:
        parts = []
        for path in (getattr(self, "stdout_path", None), getattr(self, "stderr_path", None)):
            if path is not None and path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def post_message(self, slug: str, text: str, nick: str = "operator") -> None:
        """Post from outside any browser with the ``post_message`` command."""
        manage(self.env, "post_message", slug, text, "--nick", nick)

    def post_many(self, slug: str, texts: list[str], nick: str = "operator") -> None:
        """Many ``post_message`` calls in one Python process (one Django start-up)."""
        code = ("import json, os\n"
                "from django.core.management import call_command\n"
                "for text in json.loads(os.environ['FT_TEXTS']):\n"
                f"    call_command('post_message', {slug!r}, text, nick={nick!r})\n")
        env = {**self.env, "FT_TEXTS": json.dumps(texts)}
        manage(env, "shell", "-c", code, timeout=120)

    def create_room(self, slug: str, title: str, description: str = "") -> None:
        """Create a room through the lobby form over plain HTTP (with its CSRF token)."""
        with requests.Session() as http:
            page = http.get(self.url("/"), timeout=15)
            page.raise_for_status()
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert token, "no CSRF token in the lobby form"
            answer = http.post(self.url("/"), timeout=15, allow_redirects=False,
                               headers={"Referer": self.url("/")},
                               data={"csrfmiddlewaretoken": token[1], "slug": slug,
                                     "title": title, "description": description})
            assert answer.status_code == 302, f"room {slug} not created: {answer.status_code}"
