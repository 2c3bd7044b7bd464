"""The chat rooms app: rooms, messages, presence, and their long-poll API."""
