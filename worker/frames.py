"""Client websocket frames, built here and written in one go.

The room protocol sends each packet of a message as its own binary frame: two frames for a
small message, one per packet of a large one. Sending them one ``send`` at a time through the
websockets library costs a system call and its bookkeeping per frame; building the masked
frames of a whole message here and handing them to the transport in one write costs one.
Reading is lean_websocket.py's; the websockets connection still does the handshake, pings,
pongs and the close handshake.

Every frame is masked with its own fresh random key, as RFC 6455 (5.3) requires of a client.
"""

from __future__ import annotations

import os

try:  # the C helper ships in websockets' wheels; the pure-Python one is the fallback
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

from localmesh.protocol.wire import encode_message
from localmesh.protocol.ws_frames import OP_BINARY, frame_header

# The header of a masked binary frame shorter than 126 bytes, by length (a room message's
# header packet: 16 bytes and its type; a short data packet).
_SHORT_HEADERS = tuple(frame_header(OP_BINARY, length, masked=True) for length in range(126))
_MEDIUM_HEADER = frame_header(OP_BINARY, 126, masked=True)[:2]  # then the length in 2 bytes
_FIRST_INDEX_ONE_PACKET = (0).to_bytes(4, "big") + (1).to_bytes(4, "big")  # header packet 0 of 1
_SECOND_INDEX = (1).to_bytes(4, "big")  # data packet 1


def masked_binary_frames(payloads: list[bytes]) -> bytes:
    """RFC 6455 client frames (FIN, binary, masked with a fresh key each) for ``payloads``."""
    keys = os.urandom(4 * len(payloads))
    parts: list[bytes] = []
    for index, payload in enumerate(payloads):
        key = keys[4 * index : 4 * index + 4]
        parts += (frame_header(OP_BINARY, len(payload), masked=True), key, apply_mask(payload, key))
    return b"".join(parts)


def masked_message(message_id: int, type: str, data: bytes, packet_size: int) -> bytes:
    """The masked frames of one message (``encode_message``'s packets), ready to write.

    A message whose data fits one packet (nearly every request) is built here in one go:
    its header packet and its data packet, each framed and masked with its own key.
    """
    if not data or len(data) > packet_size:
        return masked_binary_frames(encode_message(message_id, type, data, packet_size))
    id_bytes = message_id.to_bytes(8, "big")
    head = id_bytes + _FIRST_INDEX_ONE_PACKET + type.encode()
    body = id_bytes + _SECOND_INDEX + data
    keys = os.urandom(8)
    head_key, body_key = keys[:4], keys[4:]
    size = len(body)
    if size < 126:
        body_header = _SHORT_HEADERS[size]
    elif size < 65536:  # a data packet of a typical queue message, JSON arguments and all
        body_header = _MEDIUM_HEADER + size.to_bytes(2, "big")
    else:
        body_header = frame_header(OP_BINARY, size, masked=True)
    head_size = len(head)
    return b"".join((
        _SHORT_HEADERS[head_size] if head_size < 126 else frame_header(OP_BINARY, head_size, masked=True),
        head_key, apply_mask(head, head_key),
        body_header, body_key, apply_mask(body, body_key),
    ))
