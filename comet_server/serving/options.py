"""Command-line flags, environment defaults and the docs/settings.md table, all generated from
``ServerConfig``'s fields: an option is defined once, in ``comet_server.serving.config``.

A flag's default comes from the Django setting or environment variable
``COMET_<NAME>`` (``COMET_HEAD_TIMEOUT`` for ``--head-timeout``), parsed strictly:
booleans take 1/0, true/false, yes/no, on/off; a bad value stops the start with one
line naming it.
"""

from __future__ import annotations

import argparse
from dataclasses import Field, fields
from functools import partial
from typing import Any

from comet_server.serving.config import ServerConfig, env_name, flag
from comet_server.settings import parse_bool, setting

__all__ = ["add_server_arguments", "config_from", "markdown_table", "server_options"]


def server_options() -> list[Field]:
    """The fields of ServerConfig that are options (with help)."""
    return [spec for spec in fields(ServerConfig) if spec.metadata.get("help")]


def _parser(spec: Field) -> Any:
    custom = spec.metadata.get("parse")
    if custom is not None:
        return custom
    kind = type(spec.default)
    if kind is bool:
        return parse_bool
    return kind


def _convert(spec: Field, raw: Any) -> Any:
    """The value of ``raw`` (text from a flag or the environment, or a setting)."""
    try:
        return _parser(spec)(raw) if isinstance(raw, str) else raw
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{flag(spec.name)}: {exc}") from None


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every server option; defaults from settings or the environment."""
    for spec in server_options():
        try:
            default = _convert(spec, setting(env_name(spec.name), spec.default))
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{env_name(spec.name)}: {exc}")
        help_text = spec.metadata["help"].replace("%", "%%")  # argparse formats help
        if type(spec.default) is bool:
            if spec.default:
                parser.add_argument("--no-" + flag(spec.name)[2:], dest=spec.name,
                                    action="store_false", default=default,
                                    help=f"do not {help_text}")
            else:
                parser.add_argument(flag(spec.name), dest=spec.name, action="store_true",
                                    default=default, help=help_text)
            continue
        shown = spec.metadata.get("shown") or spec.default
        parser.add_argument(flag(spec.name), dest=spec.name, default=default,
                            type=partial(_convert, spec),
                            help=f"{help_text} (default {shown})")


def config_from(values: dict[str, Any]) -> ServerConfig:
    """A ServerConfig from parsed arguments (argparse's namespace as a dict); a bad
    combination raises ValueError with one line."""
    config = ServerConfig(**{spec.name: values[spec.name] for spec in server_options()})
    if config.workers > 1 and not setting("COMET_BROKER"):
        raise ValueError("--workers > 1 needs COMET_BROKER (e.g. redis://127.0.0.1:6379/0): "
                         "without a broker a publish in one worker cannot wake the others")
    return config


def markdown_table() -> str:
    """The table of server options in docs/settings.md (tests/test_config.py checks it)."""
    rows = ["| option | setting / env | default | meaning |", "|---|---|---|---|"]
    for spec in server_options():
        if type(spec.default) is bool:
            name = flag(spec.name) if not spec.default else "--no-" + flag(spec.name)[2:]
            shown = "on" if spec.default else "off"
        else:
            name = f"{flag(spec.name)} {spec.name.split('_')[-1].upper()}"
            shown = spec.metadata.get("shown") or str(spec.default)
        rows.append(f"| `{name}` | `{env_name(spec.name)}` | {shown} | "
                    f"{spec.metadata['help']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
