"""examples/minimal works as README says: ``python manage.py migrate`` then ``python
manage.py runcomet`` inside it serve its page at ``/``; its API answers a plain HTTP
client (post, long-poll woken by a post, event stream resumed with Last-Event-ID, a
bad cursor refused); two real browsers chat through it with the shipped comet.js.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from functional_tests.browser import LIVE, until
from tests.helpers.proc import PYTHON, ROOT, ServerProcess, child_env, wait_until

EXAMPLE = ROOT / "examples" / "minimal"
# The commands README gives a developer, run here as they are written.
COMMANDS = ("python manage.py migrate", "python manage.py runcomet")


def example_env(db: Path) -> dict[str, str]:
    return {"DJANGO_SETTINGS_MODULE": "minimal.settings", "MINIMAL_DB": str(db)}


@pytest.fixture
def minimal(tmp_path: Path) -> Iterator[ServerProcess]:
    env = example_env(tmp_path / "db.sqlite3")
    done = subprocess.run([PYTHON, "manage.py", *COMMANDS[0].split()[2:]], cwd=EXAMPLE,
                          env=child_env(env), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Applying chat.0001_initial... OK" in done.stdout
    server = ServerProcess([PYTHON, "manage.py", *COMMANDS[1].split()[2:], "127.0.0.1:0",
                            "--noreload"], tmp_path, name="minimal", env=env, cwd=EXAMPLE)
    server.start()
    try:
        yield server
    finally:
        server.close()


def test_readme_gives_these_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "cd examples/minimal" in readme
    for command in COMMANDS:
        assert command in readme, command


def test_the_examples_python_stays_small() -> None:
    lines = sum(len(p.read_text().splitlines()) for p in EXAMPLE.rglob("*.py"))
    assert lines <= 200, f"examples/minimal has {lines} lines of Python"
    for path in EXAMPLE.rglob("*.py"):  # the public API of comet_server only
        for name in re.findall(r"(?:from|import) (comet_server\.[\w.]+)", path.read_text()):
            assert name in ("comet_server.middleware",), f"{path}: {name}"


def test_the_api_over_plain_http(minimal: ServerProcess) -> None:
    base = f"http://127.0.0.1:{minimal.port}"
    first = requests.post(base + "/messages", data={"author": "ann", "text": "hello"}, timeout=10)
    assert first.status_code == 201, first.text
    first_id = first.json()["id"]
    assert requests.post(base + "/messages", data={"text": " "}, timeout=10).status_code == 400
    assert requests.get(base + "/updates?after=-1", timeout=10).status_code == 400
    assert requests.get(base + "/updates?after=x", timeout=10).status_code == 400

    # Behind: answered at once from the database.
    answer = requests.get(f"{base}/updates?after=0", timeout=10).json()
    assert [e["data"]["text"] for e in answer["events"]] == ["hello"]
    assert answer["cursor"] == first_id

    # Up to date: parked until a post wakes it.
    woken: dict[str, object] = {}
    poll = threading.Thread(target=lambda: woken.update(
        answer=requests.get(f"{base}/updates?after={first_id}", timeout=40).json()))
    poll.start()
    until_parked(minimal)
    second = requests.post(base + "/messages", data={"author": "bob", "text": "woken"},
                           timeout=10).json()
    poll.join(30)
    assert woken["answer"] == {"events": [{"event": "message", "data": second,
                                           "id": second["id"]}], "cursor": second["id"]}

    # The stream resumes after Last-Event-ID: "ready", then only the later message.
    with requests.get(base + "/events", stream=True, timeout=10,
                      headers={"Last-Event-ID": str(first_id)}) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        seen: list[str] = []
        for line in lines:
            seen.append(line)
            if line.startswith("data: {\"id\""):
                break
    assert "event: ready" in seen
    assert f"id: {second['id']}" in seen and f"id: {first_id}" not in seen


def until_parked(server: ServerProcess) -> None:
    wait_until(lambda: server.stats().get("parked") == 1, 10, "the long-poll parked")


@pytest.fixture
def two_pages(minimal: ServerProcess, browser: WebDriver,
              other_browser: WebDriver) -> tuple[str, WebDriver, WebDriver]:
    base = f"http://127.0.0.1:{minimal.port}/"
    for page in (browser, other_browser):
        page.get(base)
        until(page, lambda d: d.find_element(By.ID, "status").text == "live (SSE)",
              "the minimal page did not go live over SSE", LIVE)
    return base, browser, other_browser


def texts(driver: WebDriver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#messages .text'))"
        ".map(function (e) { return e.textContent; });")


def test_two_browsers_chat_with_comet_js(two_pages: tuple[str, WebDriver, WebDriver]) -> None:
    _base, ann, bob = two_pages
    ann.find_element(By.ID, "author").send_keys("ann")
    ann.find_element(By.ID, "text").send_keys("<b>hi</b> bob")
    ann.find_element(By.ID, "send").click()
    until(bob, lambda d: "<b>hi</b> bob" in texts(d), "bob never saw ann's message", LIVE)
    until(ann, lambda d: "<b>hi</b> bob" in texts(d), "ann never saw her message", LIVE)
    assert not bob.find_elements(By.CSS_SELECTOR, "#messages b"), "a message became HTML"
    bob.find_element(By.ID, "text").send_keys("hello ann")
    bob.find_element(By.ID, "send").click()
    until(ann, lambda d: "hello ann" in texts(d), "ann never saw bob's answer", LIVE)
    for page in (ann, bob):
        assert texts(page).count("<b>hi</b> bob") == 1 and texts(page).count("hello ann") == 1


def test_the_api_guides_curl_lines(minimal: ServerProcess) -> None:
    """docs/api.md's shell lines, run as a developer pastes them (on this server's port)."""
    doc = (ROOT / "docs" / "api.md").read_text()
    block = next(b for b in re.findall(r"```console\n(.*?)```", doc, re.S) if "curl" in b)
    lines = [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    script = "\n".join(lines).replace("127.0.0.1:8000", f"127.0.0.1:{minimal.port}")
    done = subprocess.run(["bash", "-c", script + "\nwait"], capture_output=True, text=True,
                          timeout=60)
    out = done.stdout
    assert '"text": "hello"' in out and '"text": "again"' in out, out
    assert "event: ready" in out and "event: message" in out, out
    # The parked poll was answered by the post that followed it, with that message only.
    assert out.count('"cursor": 2') == 1, out
