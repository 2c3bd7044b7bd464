"""The chat's event names are written once (chatsite/rooms/events.py): Python uses
the enums, the page gets them as one data attribute."""

from __future__ import annotations

import json
import re

from chatsite.rooms import events
from chatsite.rooms.models import ChangeKind
from tests.helpers.proc import ROOT


def test_the_page_gets_every_frame_and_change_name() -> None:
    names = json.loads(events.page_attrs()["events"])
    assert names["frames"] == {"ready": "ready", "resync": "resync", "messages": "messages",
                               "changes": "changes", "presence": "presence",
                               "typing": "typing", "membership": "membership",
                               "rooms": "rooms"}
    assert names["changes"] == {"deleted": "deleted", "edited": "edited"}
    assert set(ChangeKind.values) == set(events.CHANGE_TYPES)


def test_signals_go_out_as_plain_json_strings() -> None:
    payload = {"type": events.Signal.MESSAGE}
    assert json.dumps(payload) == '{"type": "message"}'
    assert json.loads(json.dumps(payload))["type"] == events.Signal.MESSAGE


def test_no_chat_module_spells_an_event_name_itself() -> None:
    literal = re.compile(r"""["']type["']\s*:\s*["']|event\s*=\s*["']"""
                         r"""|get\(["']type["']\)\s*==\s*["']""")
    chat = ROOT / "chatsite"
    found = [f"{path.relative_to(ROOT)}:{n}" for path in chat.rglob("*.py")
             if path != chat / "rooms" / "events.py"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if literal.search(line) and not line.lstrip().startswith(("#", '"""', "``"))
             and "``" not in line]
    assert found == []
