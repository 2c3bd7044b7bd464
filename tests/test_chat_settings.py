"""The chat's settings are defined once (chatsite/rooms/conf.py): every one is read
from the environment at start, a bad value stops the start in one line, and the
README's table is the generated one.  Settings are read once per process, so each
environment is tried in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from chatsite.rooms import conf
from tests.helpers.proc import PYTHON, ROOT

PRINT_VALUES = ("import json; from chatsite.rooms import conf; "
                "print(json.dumps({s.name: conf.value(s.name) for s in conf.SETTINGS}))")


def run(env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "DJANGO_"))}
    full.update({"DJANGO_SETTINGS_MODULE": "chatsite.settings", **env})
    return subprocess.run([PYTHON, "-c", "import django; django.setup(); " + PRINT_VALUES],
                          cwd=ROOT, env=full, capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "chatsite" / "rooms" / "README.md").read_text()
    inside = readme.split("<!-- chat-settings:start -->\n")[1].split(
        "\n<!-- chat-settings:end -->")[0]
    assert inside == conf.markdown_table()


def test_every_setting_is_read_from_the_environment() -> None:
    given = {"CHAT_POLL_TIMEOUT": "7.5", "CHAT_PRESENCE_SECONDS": "33",
             "CHAT_STREAM_LIFETIME": "120", "CHAT_STREAM_FIRST_EVENT_SECONDS": "2",
             "CHAT_RATE_POST_SESSION": "3/5", "CHAT_RATE_POST_ADDRESS": "4/5",
             "CHAT_RATE_ROOM_ADDRESS": "1/60", "CHAT_RATE_NAME_SESSION": "2/60",
             "CHAT_RATE_TYPING_SESSION": "9/60", "CHAT_RATE_TYPING_ADDRESS": "19/60",
             "CHAT_MAX_ROOMS_PER_USER": "3",
             "CHAT_GUESTS": "off", "CHAT_GUEST_NAME_SECONDS": "60", "CHAT_WEBSOCKET": "0"}
    assert set(given) == {spec.name for spec in conf.SETTINGS}  # every one is tried
    done = run(given)
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    expected = {spec.name: spec.default for spec in conf.SETTINGS}
    assert all(values[name] != default for name, default in expected.items())
    assert values["CHAT_POLL_TIMEOUT"] == 7.5 and values["CHAT_PRESENCE_SECONDS"] == 33
    assert values["CHAT_GUESTS"] is False and values["CHAT_MAX_ROOMS_PER_USER"] == 3
    assert values["CHAT_WEBSOCKET"] is False
    assert values["CHAT_RATE_POST_SESSION"] == "3/5"


def test_unset_settings_are_the_defaults() -> None:
    done = run({})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {spec.name: spec.default for spec in conf.SETTINGS}


@pytest.mark.parametrize(("env", "message"), [
    ({"CHAT_POLL_TIMEOUT": "soon"}, "CHAT_POLL_TIMEOUT"),
    ({"CHAT_PRESENCE_SECONDS": "0"}, "CHAT_PRESENCE_SECONDS"),
    ({"CHAT_GUESTS": "maybe"}, "CHAT_GUESTS"),
    ({"CHAT_RATE_POST_SESSION": "ten per second"}, "CHAT_RATE_POST_SESSION"),
])
def test_a_bad_value_stops_the_start_in_one_line(env, message) -> None:
    done = run(env)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: ")
    assert message in last


def test_only_conf_reads_the_chat_settings() -> None:
    reads = re.compile(r"""settings\.CHAT_|getattr\(settings,\s*["']CHAT_""")
    chat = ROOT / "chatsite"
    found = [str(path.relative_to(ROOT)) for path in chat.rglob("*.py")
             if reads.search(path.read_text()) and path != chat / "rooms" / "conf.py"]
    assert found == []


def test_a_test_may_override_a_setting(settings) -> None:
    settings.CHAT_POLL_TIMEOUT = 0.5
    assert conf.poll_timeout() == 0.5
    del settings.CHAT_POLL_TIMEOUT
    assert conf.poll_timeout() == 25.0
