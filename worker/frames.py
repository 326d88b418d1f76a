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

from localmesh.protocol.ws_frames import OP_BINARY, frame_header


def masked_binary_frames(payloads: list[bytes]) -> bytes:
    """RFC 6455 client frames (FIN, binary, masked with a fresh key each) for ``payloads``."""
    keys = os.urandom(4 * len(payloads))
    parts: list[bytes] = []
    for index, payload in enumerate(payloads):
        key = keys[4 * index : 4 * index + 4]
        parts += (frame_header(OP_BINARY, len(payload), masked=True), key, apply_mask(payload, key))
    return b"".join(parts)
