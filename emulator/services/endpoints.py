"""The "endpoint" shape: wait until a service's port is live, then call its agents in.

As the real room does for a port endpoint with a ``meshagent:`` block: it POSTs the
``room.call`` webhook with a participant token minted for the endpoint's identity, and the
service (an SDK ``ServiceHost``) joins the room with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from .launch import PortPlan
from .status import PortStatus

POLL_INTERVAL = 0.1

# (identity, api scope or None) -> participant token
MintFor = Callable[[str, dict[str, Any] | None], str]


class EndpointError(Exception):
    """The service did not become live, or refused a call; the message says which."""


async def wait_live(port: PortPlan, status: PortStatus, timeout: float, clock: Callable[[], float]) -> None:
    """Poll the port's liveness path (``/`` without one) until it answers, or time out."""
    path = port.liveness or "/"
    url = f"http://127.0.0.1:{port.number}{path}"
    status.liveness_status = "not_ready"
    try:
        async with httpx.AsyncClient(timeout=2.0) as http, asyncio.timeout(timeout):
            while True:
                status.last_checked_at = clock()
                try:
                    response = await http.get(url)
                    # A declared liveness path must say 200; without one any answer means "listening".
                    if response.status_code == 200 or (port.liveness is None and response.status_code < 500):
                        status.liveness_status = "ready" if port.liveness else "not_configured"
                        status.last_error = None
                        return
                    status.last_error = f"GET {path} answered {response.status_code}"
                except httpx.TransportError as error:
                    status.last_error = f"GET {path}: {error.__class__.__name__}"
                await asyncio.sleep(POLL_INTERVAL)
    except TimeoutError:
        raise EndpointError(
            f"port {port.number} was not live after {timeout:g} s ({status.last_error})") from None


async def call_endpoints(port: PortPlan, room: str, room_url: str, mint: MintFor) -> list[str]:
    """POST ``room.call`` to each meshagent endpoint of ``port``; returns what was called."""
    called = []
    async with httpx.AsyncClient(timeout=10.0) as http:
        for path, identity, api in port.endpoints:
            body = {"event": "room.call", "data": {
                "room_name": room, "room_url": room_url, "token": mint(identity, api), "arguments": {},
            }}
            url = f"http://127.0.0.1:{port.number}{path}"
            try:
                response = await http.post(url, json=body)
            except httpx.TransportError as error:
                raise EndpointError(f"calling {identity!r} at {path} failed: {error!r}") from None
            if response.status_code >= 400:
                raise EndpointError(f"{path} refused the call for {identity!r}:"
                                    f" HTTP {response.status_code} {response.text[:200]}")
            called.append(f"{identity} at {path}")
    return called
