"""A client of the admin API (see ``admin.py``), for ``localmesh timeline`` and ``export``."""

from __future__ import annotations

from typing import Any

import httpx


class AdminError(Exception):
    """The admin API could not be reached or refused; the message says why."""


class AdminClient:
    def __init__(self, url: str, api_key: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = timeout

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        options.setdefault("timeout", self._timeout)
        try:
            response = httpx.request(method, f"{self.url}{path}", headers=self._headers, **options)
        except httpx.HTTPError as error:
            raise AdminError(f"could not reach the emulator at {self.url}: {error}") from None
        if response.status_code >= 400:
            reason = response.headers.get("x-localmesh-reason") or response.text[:200]
            raise AdminError(f"{method} {path} answered {response.status_code}: {reason}")
        return response

    def timeline(
        self, room: str | None = None, *, since: int = 0, kind: str | None = None,
        participant: str | None = None, limit: int | None = None, wait: float = 0,
    ) -> dict[str, Any]:
        """``{"room", "last", "events": [...]}``; with ``wait``, waits that long for news."""
        params: dict[str, Any] = {"since": since, "wait": wait}
        for name, value in (("room", room), ("kind", kind), ("participant", participant),
                            ("limit", limit)):
            if value is not None:
                params[name] = value
        # The server holds a request up to ``wait``: give the client that much more time.
        timeout = httpx.Timeout(self._timeout + wait)
        return self._request("GET", "/_localmesh/timeline", params=params, timeout=timeout).json()

    def export(self) -> bytes:
        """The project's rooms, as the tar archive of an export directory."""
        return self._request("GET", "/_localmesh/export").content

    def reset(self, room: str | None = None) -> None:
        self._request("POST", "/_localmesh/reset", params={} if room is None else {"room": room})
