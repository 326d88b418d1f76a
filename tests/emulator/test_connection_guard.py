"""The listening socket stops accepting at the open-file budget instead of running into EMFILE."""

from __future__ import annotations

import socket

import pytest

from localmesh.emulator.connections import ConnectionGuard
from localmesh.emulator.limits import Limits


def test_listener_leaves_connections_queued_at_the_budget():
    guard = ConnectionGuard(Limits())
    listener = guard.listener("127.0.0.1", 0)
    listener.listen(8)
    clients = [socket.create_connection(listener.getsockname(), timeout=5) for _ in range(3)]
    accepted: list[socket.socket] = []
    try:
        guard.fd_budget = 2
        accepted.append(listener.accept()[0])
        accepted.append(listener.accept()[0])
        assert guard.accepted_unseen == 2
        with pytest.raises(BlockingIOError):
            listener.accept()  # the third waits in the kernel's queue
        guard.accepted_unseen = 1  # a protocol saw one and it was cut
        accepted.append(listener.accept()[0])
        assert len(accepted) == 3
    finally:
        for sock in clients + accepted:
            sock.close()
        listener.close()


def test_listener_bind_failure_is_an_oserror_and_leaks_nothing():
    guard = ConnectionGuard(Limits())
    taken = guard.listener("127.0.0.1", 0)
    taken.listen(1)
    try:
        with pytest.raises(OSError):
            guard.listener("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
