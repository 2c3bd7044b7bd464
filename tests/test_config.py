"""The server's configuration: one frozen dataclass, the flags and docs/settings.md table made
from it, strict values with one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from comet_server.serving.config import ServerConfig
from comet_server.serving.options import add_server_arguments, config_from, markdown_table

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def parse(*argv: str) -> ServerConfig:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return config_from(vars(parser.parse_args(argv)))


def test_the_docs_table_is_the_generated_one():
    readme = (ROOT / "docs" / "settings.md").read_text()
    inside = readme.split("<!-- server-options:start -->\n")[1].split(
        "\n<!-- server-options:end -->")[0]
    assert inside == markdown_table()


def test_flags_set_fields_and_the_config_is_frozen():
    config = parse("--head-timeout", "2.5", "--max-connections-per-client", "3",
                   "--forwarded-allow-ips", "10.0.0.1, ::1", "--stats-public",
                   "--no-access-log")
    assert config.head_timeout == 2.5 and config.max_connections_per_client == 3
    assert config.forwarded_allow_ips == ("10.0.0.1", "::1")
    assert config.stats_public is True and config.access_log is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.head_timeout = 1  # type: ignore[misc]


def test_environment_gives_the_defaults(monkeypatch):
    monkeypatch.setenv("COMET_HEAD_TIMEOUT", "4")
    monkeypatch.setenv("COMET_ACCESS_LOG", "off")
    config = parse()
    assert config.head_timeout == 4.0 and config.access_log is False


def test_workers_is_an_option_of_both_commands_from_flag_or_environment(monkeypatch,
                                                                       settings):
    assert parse().workers == 1 and not parse().multiprocess
    settings.COMET_BROKER = "redis://127.0.0.1:6379/0"
    assert parse("--workers", "3").workers == 3 and parse("--workers", "3").multiprocess
    monkeypatch.setenv("COMET_WORKERS", "2")
    assert parse().workers == 2


def without_broker() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}


@pytest.mark.parametrize("command", [
    ["-m", "comet_server", "tests.wsgi_apps:hello", "127.0.0.1:0"],
    ["manage.py", "runcomet", "127.0.0.1:0", "--noreload"],
], ids=["comet_server", "runcomet"])
@pytest.mark.parametrize("argv, env, message", [
    (["--workers", "0"], {}, "--workers must be at least 1, got 0"),
    ([], {"COMET_WORKERS": "0"}, "--workers must be at least 1, got 0"),
    ([], {"COMET_WORKERS": "many"}, "COMET_WORKERS"),
    (["--workers", "2"], {}, "--workers > 1 needs COMET_BROKER"),
], ids=["flag", "env", "env-not-a-number", "no-broker"])
def test_bad_workers_are_refused_in_one_line_by_both_commands(command, argv, env, message):
    done = subprocess.run([PYTHON, *command, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**without_broker(), **env})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert message in last and "Traceback" not in done.stderr


@pytest.mark.parametrize("argv, message", [
    (["--head-timeout", "soon"], "--head-timeout"),
    (["--max-header-size", "10"], "--max-header-size must be at least 256"),
    (["--forwarded-allow-ips", "proxy.example"], "is not an IP address"),
    (["--max-body-size", "2000", "--max-body-bytes-total", "1000"], "hold at least one body"),
])
def test_bad_values_are_refused_in_one_line(argv, message):
    done = subprocess.run([PYTHON, "-m", "comet_server", "tests.wsgi_apps:hello",
                           "127.0.0.1:0", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert message in last and "Traceback" not in done.stderr
