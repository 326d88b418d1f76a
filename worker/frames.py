"""Client websocket frames, built here and written in one go.

The room protocol sends each packet of a message as its own binary frame: two frames for a
small message, one per KiB of a large one. Sending them one ``send`` at a time through the
websockets library costs a system call and its bookkeeping per frame; building the masked
frames of a whole message here and handing them to the transport in one write costs one.
Reading is lean_websocket.py's; the websockets connection still does the handshake, pings,
pongs and the close handshake.
"""

from __future__ import annotations

import os

try:  # the C helper ships in websockets' wheels; the pure-Python one is the fallback
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

OP_BINARY = 0x2


def masked_binary_frames(payloads: list[bytes]) -> bytes:
    """RFC 6455 client frames (FIN, binary, masked with a fresh key each) for ``payloads``."""
    keys = os.urandom(4 * len(payloads))
    parts: list[bytes] = []
    for index, payload in enumerate(payloads):
        length = len(payload)
        if length < 126:
            header = bytes((0x80 | OP_BINARY, 0x80 | length))
        elif length < 65536:
            header = bytes((0x80 | OP_BINARY, 0x80 | 126)) + length.to_bytes(2, "big")
        else:
            header = bytes((0x80 | OP_BINARY, 0x80 | 127)) + length.to_bytes(8, "big")
        key = keys[4 * index : 4 * index + 4]
        parts += (header, key, apply_mask(payload, key))
    return b"".join(parts)
