"""comet-server as a distribution: built into a wheel, installed into a fresh virtualenv,
used by a tiny Django project outside this repository; and the one warning of a
``publish()`` that can reach nobody.

The wheel is built from a copy of the checkout (without .venv, .git and build leftovers):
setuptools writes ``build/`` and ``*.egg-info`` next to the sources, which must neither
land in the checkout other runs are using nor leak stale files into the wheel.  Django
and httptools come from PyPI (pip's cache makes later runs quicker).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comet_server.push import default_hub as default_hub_module
from comet_server.push.default_hub import publish, set_hub
from comet_server.push.events import Event
from comet_server.push.hub import Hub
from tests.helpers.proc import ServerProcess, wait_until

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.pyc", "*.egg-info", "build", "dist", "staticfiles",
    "*.sqlite3*", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis", "results",
)

# -- a tiny Django project that knows nothing of this repository ----------------------

TINY_PROJECT = {
    "manage.py": """
        import os
        import sys

        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tinysite.settings")
            from django.core.management import execute_from_command_line

            execute_from_command_line(sys.argv)
    """,
    "tinysite/__init__.py": "",
    "tinysite/settings.py": """
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent
        SECRET_KEY = "tiny-project-for-the-packaging-test-" + "x" * 20
        DEBUG = False
        ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
        INSTALLED_APPS = ["comet_server"]
        MIDDLEWARE = ["comet_server.middleware.CometMiddleware"]
        ROOT_URLCONF = "tinysite.urls"
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                                 "NAME": BASE_DIR / "db.sqlite3"}}
        USE_TZ = True
    """,
    "tinysite/urls.py": """
        import sys

        import comet_server
        import django
        from django.http import JsonResponse
        from django.urls import path

        from comet_server import publish, wait_for_events


        def render(events, after):
            return JsonResponse({"after": after, "payloads": [e.payload for e in events]})


        def wait(request):
            after = int(request.GET.get("after", "0"))
            return wait_for_events(["tiny"], after=after, render=render, timeout=20)


        def post(request):
            cursor = int(request.GET["cursor"])
            publish("tiny", {"text": request.body.decode()}, cursor=cursor)
            return JsonResponse({"published": cursor}, status=201)


        def where(request):
            return JsonResponse({"comet_server": comet_server.__file__,
                                 "django": django.__file__, "python": sys.executable})


        urlpatterns = [path("wait", wait), path("post", post), path("where", where)]
    """,
}


def write_tiny_project(directory: Path) -> None:
    for name, text in TINY_PROJECT.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a shell in which only the fresh venv is active."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONHOME"}
           and not k.startswith("COMET_")}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
               PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, **kwargs)
    assert done.returncode == 0, (f"{argv} exited {done.returncode}\n"
                                  f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}")
    return done


class Installed:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.wheel: Path | None = None
        self.venv = root / "venv"
        self.python = self.venv / "bin" / "python"
        self.project = root / "project"
        self.env = clean_env(self.venv)
        self.timings: dict[str, float] = {}

    def site_packages(self) -> Path:
        code = "import sysconfig; print(sysconfig.get_path('purelib'))"
        out = run([str(self.python), "-c", code], cwd=self.project, env=self.env).stdout
        return Path(out.strip()).resolve()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """A wheel of this checkout installed into a fresh venv, and a tiny project beside it."""
    inst = Installed(tmp_path_factory.mktemp("packaging"))
    source, wheels = inst.root / "source", inst.root / "wheels"
    start = time.monotonic()
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE, symlinks=True)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", str(wheels), "."], cwd=source)
    inst.timings["build"] = time.monotonic() - start
    (inst.wheel,) = wheels.glob("comet_server-*.whl")

    start = time.monotonic()
    run([sys.executable, "-m", "venv", str(inst.venv)])
    run([str(inst.python), "-m", "pip", "install", "-q", str(inst.wheel)],
        cwd=inst.root, env=inst.env)
    inst.timings["venv+install"] = time.monotonic() - start
    write_tiny_project(inst.project)
    yield inst
    print(f"packaging timings: {inst.timings}")


# -- the distribution ----------------------------------------------------------------

def test_wheel_holds_comet_server_only_with_its_commands(installed: Installed) -> None:
    assert installed.wheel is not None
    assert installed.wheel.name == "comet_server-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        metadata = wheel.read("comet_server-0.2.0.dist-info/METADATA").decode()
        entry_points = wheel.read("comet_server-0.2.0.dist-info/entry_points.txt").decode()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"comet_server", "comet_server-0.2.0.dist-info"}, tops
    for module in ("management/__init__.py", "management/commands/__init__.py",
                   "management/commands/runcomet.py", "management/commands/comet_publish.py"):
        assert f"comet_server/{module}" in names
    assert "comet_server-0.2.0.dist-info/licenses/LICENSE" in names
    assert "comet_server/static/comet_server/comet.js" in names  # the browser client
    assert "Name: comet-server\n" in metadata
    assert "Requires-Python: >=3.11\n" in metadata
    requires = sorted(line for line in metadata.splitlines() if line.startswith("Requires-Dist"))
    assert requires == [
        "Requires-Dist: Django<6,>=5.2",
        'Requires-Dist: hiredis<4,>=3.0; extra == "redis"',
        'Requires-Dist: httptools<1,>=0.6.2',
        "Requires-Dist: prometheus-client<1,>=0.20",
        'Requires-Dist: redis<7,>=5.0; extra == "redis"',
        "Requires-Dist: websockets<18,>=14",
    ]
    assert "comet-server = comet_server.__main__:main" in entry_points


def test_installed_package_is_imported_from_the_fresh_venv(installed: Installed) -> None:
    out = run([str(installed.python), "-c", "import comet_server; print(comet_server.__file__)"],
              cwd=installed.project, env=installed.env).stdout
    location = Path(out.strip()).resolve()
    assert location.is_relative_to(installed.site_packages()), location
    assert not location.is_relative_to(ROOT)


def test_console_script_help(installed: Installed) -> None:
    done = run([str(installed.venv / "bin" / "comet-server"), "--help"],
               cwd=installed.project, env=installed.env)
    assert "module:attribute of a WSGI application" in done.stdout
    assert "--max-connections" in done.stdout
    assert "``" not in done.stdout, "reStructuredText markup in --help"
    assert "127.0.0.1:8000" in done.stdout, "--help does not show the default bind"


def test_tiny_project_long_poll_woken_by_a_publish_over_http(installed: Installed) -> None:
    start = time.monotonic()
    server = ServerProcess(
        [str(installed.python), "manage.py", "runcomet", "127.0.0.1:0", "--noreload"],
        installed.root, name="runcomet", base_env=installed.env, cwd=installed.project)
    try:
        port = server.start(20).port
        base = f"http://127.0.0.1:{port}"

        def get_json(path: str, data: bytes | None = None, timeout: float = 10) -> Any:
            with urllib.request.urlopen(base + path, data=data, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())

        # The server runs the venv's comet_server and Django, not this checkout's.
        where = get_json("/where")[1]
        site = installed.site_packages()
        for name in ("comet_server", "django"):
            assert Path(where[name]).resolve().is_relative_to(site), where
        assert Path(where["python"]).parent.parent == installed.venv, where

        answer: dict[str, Any] = {}

        def long_poll() -> None:
            answer["result"] = get_json("/wait?after=0", timeout=25)
            answer["at"] = time.monotonic()

        poller = threading.Thread(target=long_poll, daemon=True)
        poller.start()
        wait_until(lambda: get_json("/_comet/stats")[1]["parked"] == 1, 10, "the parked poll")
        time.sleep(0.2)
        assert "result" not in answer  # parked, not answered

        published_at = time.monotonic()
        assert get_json("/post?cursor=1", data=b"hello from a tiny project") == (
            201, {"published": 1})
        poller.join(10)
        assert answer.get("result") == (
            200, {"after": 0, "payloads": [{"text": "hello from a tiny project"}]}), answer
        assert answer["at"] - published_at < 2.0
    finally:
        code = server.terminate()
    assert code == 0, server.logs()
    installed.timings["runcomet"] = time.monotonic() - start


def test_shell_publish_without_broker_warns_once(installed: Installed) -> None:
    """`manage.py shell` without COMET_BROKER: the first publish says so, once."""
    done = run([str(installed.python), "manage.py", "shell", "-c",
                "from comet_server import publish; publish('tiny', 1); publish('other', 2)"],
               cwd=installed.project, env=installed.env)
    warnings = [line for line in done.stderr.splitlines() if "reached nobody" in line]
    assert len(warnings) == 1, done.stderr
    assert "COMET_BROKER" in warnings[0]


# -- the warning of a publish() that can reach nobody ---------------------------------

class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def unreachable_warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The process has not warned yet; collects what ``comet_server.push.default_hub`` logs."""
    monkeypatch.setattr(default_hub_module, "_warned_unreachable", False)
    logger = logging.getLogger("comet_server.push.default_hub")
    handler = ListHandler()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


class RecordingBroker:
    def __init__(self) -> None:
        self.sent: list[Event] = []

    def send(self, event: Event) -> None:
        self.sent.append(event)

    def wait_blocking(self, hub: Hub, channels: tuple[str, ...], after: int | None,
                      timeout: float) -> Any:
        raise NotImplementedError


def test_publish_reaching_nobody_warns_once_per_process(unreachable_warnings: list[str]) -> None:
    publish("shell:a", {"n": 1}, cursor=1)
    publish("shell:a", {"n": 2}, cursor=2)
    publish("shell:b")
    assert len(unreachable_warnings) == 1, unreachable_warnings
    (message,) = unreachable_warnings
    assert "'shell:a'" in message and "COMET_BROKER" in message and "\n" not in message


def test_no_warning_with_a_broker(unreachable_warnings: list[str]) -> None:
    broker = RecordingBroker()
    set_hub(Hub(broker=broker))  # fresh_hub puts the previous hub back
    publish("shell:a", {"n": 1}, cursor=1)
    assert [e.channel for e in broker.sent] == ["shell:a"]
    assert unreachable_warnings == []
    assert default_hub_module._warned_unreachable is False


def test_no_warning_under_a_server_scheduler(fresh_hub: Hub,
                                             unreachable_warnings: list[str]) -> None:
    queued: list[Any] = []
    fresh_hub.set_scheduler(queued.append)
    publish("view:a", {"n": 1}, cursor=1)
    assert queued and unreachable_warnings == []


def test_no_warning_when_a_local_waiter_is_woken(fresh_hub: Hub,
                                                 unreachable_warnings: list[str]) -> None:
    woken: list[Any] = []
    fresh_hub.watch(("room:a",), 0, woken.append)
    publish("room:a", {"n": 1}, cursor=1)
    assert len(woken) == 1 and [e.payload for e in woken[0].events] == [{"n": 1}]
    assert unreachable_warnings == []
    publish("room:b")  # nobody waits there: now it warns
    assert len(unreachable_warnings) == 1


def test_a_refused_publish_does_not_warn(unreachable_warnings: list[str]) -> None:
    with pytest.raises(ValueError):
        publish("")
    with pytest.raises(TypeError):
        publish("shell:a", object())
    assert unreachable_warnings == []
    assert default_hub_module._warned_unreachable is False
