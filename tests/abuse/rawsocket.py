"""A websocket client by hand, for clients no library would be: one that completes the
upgrade and then never reads, never answers a ping, or sends half a request."""

from __future__ import annotations

import base64
import os
import socket
from urllib.parse import urlparse

from localmesh.protocol.wire import encode_message, pack


def client_frame(payload: bytes, opcode: int = 2, *, zero_mask: bool = False) -> bytes:
    """One masked, final websocket frame (clients must mask; an all-zero mask is legal and
    leaves the payload as it is, which is fast for load generation)."""
    head = bytearray([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head.append(0x80 | size)
    elif size < 1 << 16:
        head.append(0x80 | 126)
        head += size.to_bytes(2, "big")
    else:
        head.append(0x80 | 127)
        head += size.to_bytes(8, "big")
    if zero_mask:
        return bytes(head) + b"\0\0\0\0" + payload
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if size < 4096 else _mask(payload, mask)
    return bytes(head) + mask + body


def _mask(payload: bytes, mask: bytes) -> bytes:
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def upgrade_request(path: str, token: str, host: str = "127.0.0.1") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


def open_upgraded(url: str, token: str, *, rcvbuf: int | None = 4096) -> socket.socket:
    """A blocking socket past the 101 answer; the caller then reads what it wants, if anything."""
    parts = urlparse(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(upgrade_request(parts.path, token))
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"closed during the upgrade: {head!r}")
        head += byte
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(f"upgrade refused: {head!r}")
    return sock


def send_request(sock: socket.socket, message_id: int, type: str, header: dict) -> None:
    for frame in encode_message(message_id, type, pack(header)):
        sock.sendall(client_frame(frame))


def invoke(toolkit: str, tool: str, arguments: dict) -> dict:
    return {"toolkit": toolkit, "tool": tool, "arguments": {"type": "json", "json": arguments}}
