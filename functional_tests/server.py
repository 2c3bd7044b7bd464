"""Run the chat on ``runcomet`` as a real subprocess, as a person would deploy it.

The tests talk to it over HTTP only (browsers, ``requests``) and post from outside
with ``manage.py post_message``, so the page's long-poll is tested end to end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests

from tests.helpers.proc import (
    UNLIMITED_CHAT_ENV,
    ServerProcess,
    broker_env,
    child_env,
    manage,
    runcomet_argv,
)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def chat_env(db_path: Path, broker: str = "",
             rules: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of every server and command of one test database.  ``rules``: the
    chat's abuse rules (default: off, since the tests' browsers all come from 127.0.0.1
    and reuse names such as "ann" across tests; tests of the rules pass their own)."""
    rules = UNLIMITED_CHAT_ENV if rules is None else rules
    return child_env(broker_env(broker or None), rules, {
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "DJANGO_DEBUG": "1",
    })


class ChatServer(ServerProcess):
    """One ``runcomet`` process; ``start`` after ``stop`` (or ``restart``) brings it back
    on the same port and database."""

    def __init__(self, db_path: Path, log_dir: Path, name: str = "chat",
                 broker: str = "", rules: dict[str, str] | None = None) -> None:
        self.db_path = db_path
        env = chat_env(db_path, broker, rules)
        super().__init__(runcomet_argv(), log_dir, name=name, env=env,
                         start_timeout=START_TIMEOUT, stop_timeout=STOP_TIMEOUT)

    def migrate(self) -> None:
        manage("migrate", "--noinput", env=self.env)

    def stop(self) -> None:
        """SIGTERM and wait, as an operator would; SIGKILL only if it hangs."""
        self.terminate()

    def post_message(self, slug: str, text: str, nick: str = "operator") -> None:
        """Post from outside any browser with the ``post_message`` command."""
        manage("post_message", slug, text, "--nick", nick, env=self.env)

    def post_many(self, slug: str, texts: list[str], nick: str = "operator") -> None:
        """Many ``post_message`` calls in one Python process (one Django start-up)."""
        code = ("import json, os\n"
                "from django.core.management import call_command\n"
                "for text in json.loads(os.environ['FT_TEXTS']):\n"
                f"    call_command('post_message', {slug!r}, text, nick={nick!r})\n")
        env = {**self.env, "FT_TEXTS": json.dumps(texts)}
        manage("shell", "-c", code, env=env, timeout=120)

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
