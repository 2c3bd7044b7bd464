"""Names of the comet channels the chat publishes on."""

LOBBY = "lobby"  # room list: message counts (cursor = message id) and presence signals


def room_channel(slug: str) -> str:
    """The channel of one room: messages (cursor = message id), presence and typing signals."""
    return f"room:{slug}"


# Moderation events on a room's channel (signals: ``{"type", "id"}``, ``id`` = the
# change's id); pages read the changes from the database.
CHANGE_TYPES = ("deleted", "edited")
# A private room's members changed: parked members that were removed are answered.
MEMBERSHIP = "membership"
