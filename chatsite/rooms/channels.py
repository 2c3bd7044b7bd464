"""Names of the comet channels the chat publishes on."""

LOBBY = "lobby"  # room list: message counts (cursor = message id) and presence signals


def room_channel(slug: str) -> str:
    """The channel of one room: messages (cursor = message id), presence and typing signals."""
    return f"room:{slug}"
