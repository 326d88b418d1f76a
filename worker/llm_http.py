"""``HttpTransport``: one JSON ``POST`` per LLM turn, for any provider's HTTP API."""

from __future__ import annotations

from typing import Any

import httpx

from localmesh.worker.errors import LLMError


class HttpTransport:
    """Non-streaming ``POST {base_url}{path}`` with the key in ``auth_header``.

    ``auth_header`` is ``authorization`` (sent as ``Bearer <key>``, OpenAI's way) or
    ``x-api-key`` (Anthropic's way); ``headers`` are added to every request.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 120.0,
        path: str = "/responses",
        auth_header: str = "authorization",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.path = path
        self.auth_header = auth_header
        self.headers = dict(headers or {})
        self._client = client
        self._timeout = timeout

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.path}"

    def with_api_key(self, api_key: str) -> HttpTransport:
        return HttpTransport(
            self.base_url, api_key, client=self._client, timeout=self._timeout, path=self.path,
            auth_header=self.auth_header, headers=self.headers,
        )

    def _request_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "localmesh-worker", **self.headers}
        if self.api_key:
            bearer = self.auth_header.lower() == "authorization"
            headers[self.auth_header] = f"Bearer {self.api_key}" if bearer else self.api_key
        return headers

    async def create(self, body: dict[str, Any], *, conversation: str) -> dict[str, Any]:
        url = self.url
        try:
            if self._client is not None:
                response = await self._client.post(url, json=body, headers=self._request_headers())
            else:
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    response = await client.post(url, json=body, headers=self._request_headers())
        except httpx.HTTPError as error:
            raise LLMError(f"could not reach {url}: {error}") from None
        if response.status_code >= 400:
            raise LLMError(_error_message(response), response.status_code, _retry_after(response))
        try:
            return response.json()
        except ValueError:
            raise LLMError(f"{url} did not return JSON", response.status_code) from None


def _error_message(response: httpx.Response) -> str:
    # OpenAI: {"error": {"message"}}; Anthropic: {"type": "error", "error": {"type", "message"}}.
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (ValueError, AttributeError):
        pass
    return response.text[:500] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
