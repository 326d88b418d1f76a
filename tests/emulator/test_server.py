"""RoomServer start-up and shut-down."""

from __future__ import annotations

import pytest


async def test_a_port_in_use_is_a_clear_error_not_an_exit():
    import socket

    from localmesh.emulator import RoomServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"could not listen on 127.0.0.1:{port}"):
            async with RoomServer(port=port):
                pass
