"""``localmesh llm record``: a proxy on 127.0.0.1 that forwards OpenAI Responses requests to a
real endpoint and writes every exchange into a script that replays them offline.

Point a client's ``OPENAI_BASE_URL`` at ``{proxy}/v1``. Requests are sent on with the client's
``Authorization`` header, or with ``api_key`` when one is given; neither is ever written: the
script holds request and response bodies only. Plain and streamed (``"stream": true``) POSTs
are recorded; a streamed answer is passed through as it comes and recorded from its final
``response.completed`` event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from localmesh.emulator.asgi_server import InProcessServer
from localmesh.scripted_llm.recording import Recording

TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def _completed_response(sse_text: str) -> dict[str, Any] | None:
    """The ``response`` of the ``response.completed`` event in a server-sent event stream."""
    for line in sse_text.splitlines():
        if not line.startswith("data:"):
            continue
        try:
            event = json.loads(line[len("data:"):].strip())
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "response.completed":
            return event.get("response")
    return None


class RecordingProxy:
    """Serves the proxy on ``host:port`` (0: any free port) until ``stop``."""

    def __init__(self, upstream: str, out: Path, *, api_key: str | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.out = out
        self.api_key = api_key
        self.recording = Recording()
        self._host, self._port = host, port
        self._client = httpx.AsyncClient(timeout=TIMEOUT)
        self._server: InProcessServer | None = None
        self.url = ""

    def _headers(self, request: Request) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        authorization = f"Bearer {self.api_key}" if self.api_key else request.headers.get("authorization")
        if authorization:
            headers["authorization"] = authorization
        return headers

    def _save(self, body: dict[str, Any], status: int, answer: Any) -> None:
        self.recording.add(body, status, answer)
        self.out.write_text(self.recording.yaml(), encoding="utf-8")

    def app(self) -> FastAPI:
        app = FastAPI(title="localmesh llm record")

        @app.post("/v1/responses")
        @app.post("/responses")
        async def responses(request: Request) -> Response:
            try:
                body = json.loads(await request.body())
            except ValueError:
                return JSONResponse({"error": {"message": "the body must be JSON"}}, status_code=400)
            if not isinstance(body, dict):
                return JSONResponse({"error": {"message": "the body must be a JSON object"}}, status_code=400)
            url = f"{self.upstream}/responses"
            if body.get("stream") is True:
                return await self._stream(url, body, self._headers(request))
            answer = await self._client.post(url, json=body, headers=self._headers(request))
            try:
                parsed: Any = answer.json()
            except ValueError:
                parsed = {"error": {"message": answer.text[:500]}}
            self._save(body, answer.status_code, parsed)
            return JSONResponse(parsed, status_code=answer.status_code)

        return app

    async def _stream(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> Response:
        upstream = await self._client.send(
            self._client.build_request("POST", url, json=body, headers=headers), stream=True
        )
        if upstream.status_code >= 400:
            text = (await upstream.aread()).decode(errors="replace")
            await upstream.aclose()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = {"error": {"message": text[:500]}}
            self._save(body, upstream.status_code, parsed)
            return JSONResponse(parsed, status_code=upstream.status_code)

        async def relay() -> AsyncIterator[bytes]:
            seen = bytearray()
            try:
                async for chunk in upstream.aiter_bytes():
                    seen += chunk
                    yield chunk
            finally:
                await upstream.aclose()
                completed = _completed_response(seen.decode(errors="replace"))
                if completed is not None:
                    self._save(body, 200, completed)

        return StreamingResponse(relay(), media_type="text/event-stream")

    async def start(self) -> None:
        self._server = InProcessServer(self.app(), self._host, self._port, log_level="warning")
        await self._server.start()
        self.url = f"http://{self._host}:{self._server.port}"

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        await self._client.aclose()

    async def __aenter__(self) -> RecordingProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
