"""Per-frame cost of the two sans-I/O WebSocket libraries we could frame with.

Measures, in one run and on the same payloads:

- server -> client: making one unmasked text frame (what a broadcast costs once);
- client -> server: parsing one masked text frame into a message (what every
  incoming message costs: unmasking, UTF-8 check, event objects).

``websockets`` (its sans-I/O ``Protocol`` and ``Frame``, with the C speedups for
masking) against ``wsproto`` (``FrameProtocol`` / ``Connection``).  Prints µs per frame
and the ratio.  Usage: ``python bench/bench_ws_framing.py [--seconds 0.5]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State
from wsproto.connection import Connection, ConnectionType
from wsproto.frame_protocol import FrameProtocol

SIZES = (64, 1024, 16384)


def per_call(fn: Callable[[], object], seconds: float) -> float:
    """µs per call of ``fn``, over about ``seconds``."""
    calls = 0
    batch = 200
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls * 1e6


def masked_frame(payload: bytes) -> bytes:
    """A client's masked text frame carrying ``payload``."""
    return Frame(Opcode.TEXT, payload).serialize(mask=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.4)
    args = parser.parse_args()
    print(f"{'payload':>8} {'direction':<22} {'websockets µs':>14} {'wsproto µs':>11} "
          f"{'wsproto/websockets':>19}")
    for size in SIZES:
        rows(size, args.seconds)
    print(f"(pid {os.getpid()}; websockets speedups: "
          f"{'C' if _has_speedups() else 'pure Python'})")


def rows(size: int, seconds: float) -> None:
    """The two rows of one payload size."""
    text = ("é" * (size // 2))[: size // 2]
    payload = text.encode()

    # server -> client: one unmasked frame, made once per broadcast.
    def ws_make() -> bytes:
        return Frame(Opcode.TEXT, payload).serialize(mask=False)

    wsp = FrameProtocol(client=False, extensions=[])

    def wsproto_make() -> bytes:
        return wsp.send_data(text, fin=True)

    assert ws_make() == wsproto_make()
    a = per_call(ws_make, seconds)
    b = per_call(wsproto_make, seconds)
    print(f"{len(payload):>8} {'server->client make':<22} {a:>14.2f} {b:>11.2f} "
          f"{b / a:>19.2f}")

    # client -> server: parse a masked frame into one text message.
    wire = masked_frame(payload)
    proto = Protocol(Side.SERVER, state=State.OPEN, max_size=1 << 20)

    def ws_parse() -> object:
        proto.receive_data(wire)
        return proto.events_received()[0].data

    conn = Connection(ConnectionType.SERVER)

    def wsproto_parse() -> object:
        conn.receive_data(wire)
        return next(conn.events()).data

    assert ws_parse() == payload and wsproto_parse() == text
    a = per_call(ws_parse, seconds)
    b = per_call(wsproto_parse, seconds)
    print(f"{len(payload):>8} {'client->server parse':<22} {a:>14.2f} {b:>11.2f} "
          f"{b / a:>19.2f}")


def _has_speedups() -> bool:
    try:
        import websockets.speedups  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
