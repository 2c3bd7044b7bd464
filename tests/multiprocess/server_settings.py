"""chatsite.settings with a long-poll timeout the tests choose.

The default is long (60 s) on purpose: a parked poll must be answered by a wake-up
(publish, reconnect), never by its timeout, or the tests could not tell them apart.
"""

import os

from chatsite.settings import *  # noqa: F403

CHAT_POLL_TIMEOUT = float(os.environ.get("COMET_MP_POLL_TIMEOUT", "60"))
