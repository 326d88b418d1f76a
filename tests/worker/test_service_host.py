"""Our ServiceHost, in process: the MeshAgent routes, the room.call webhook, the docs' Worker API."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
import websockets
from meshagent.api.specs.service import ServiceSpec
from websockets.exceptions import InvalidStatus

from localmesh.emulator import RoomServer
from localmesh.worker import (
    OpenAIResponsesAdapter,
    OpenAIResponsesToolResponseAdapter,
    RoomClient,
    ServiceHost,
    StorageToolkit,
    ToolError,
    Worker,
)

ROOM = "service-room"
TIMEOUT = 10.0
SECRET = "a-webhook-secret-long-enough-for-hs256"


class Recorder:
    """A minimal agent: notes who it joined as, and when it is stopped."""

    started: asyncio.Queue[RoomClient]
    stopped: asyncio.Event

    async def start(self, *, room: RoomClient) -> None:
        await Recorder.started.put(room)

    async def stop(self) -> None:
        Recorder.stopped.set()


@pytest.fixture(autouse=True)
def fresh_recorder() -> None:
    Recorder.started = asyncio.Queue()
    Recorder.stopped = asyncio.Event()


@asynccontextmanager
async def serving(host: ServiceHost) -> AsyncIterator[httpx.AsyncClient]:
    await host.start()
    try:
        async with httpx.AsyncClient(base_url=host.url, timeout=TIMEOUT) as http:
            yield http
    finally:
        await host.stop()


def call_body(server: RoomServer, identity: str = "recorder") -> dict[str, Any]:
    return {"event": "room.call", "data": {
        "room_name": ROOM, "room_url": server.room_url(ROOM),
        "token": server.mint_token(room=ROOM, name=identity), "arguments": {},
    }}


async def test_routes_and_spec_match_the_meshagent_host(monkeypatch):
    monkeypatch.delenv("MESHAGENT_PORT", raising=False)
    host = ServiceHost(host="127.0.0.1", port=0, name="svc")
    host.add_path("/agent", cls=Recorder, identity="recorder", permissions={"queues": {}})
    host.add_path("/other", cls=Recorder)
    async with serving(host) as http:
        assert (await http.get("/")).json() == {"ok": True}
        spec = (await http.get("/.well-known/meshagent-service.json")).json()
    parsed = ServiceSpec.model_validate(spec)  # what `meshagent service run` does with it
    assert parsed.metadata.name == "svc"
    (port,) = parsed.ports
    assert port.num == host.port  # the port really bound, not 0
    endpoints = {e.path: e.meshagent for e in port.endpoints}
    assert endpoints["/agent"].identity == "recorder"
    assert endpoints["/agent"].api is not None and endpoints["/agent"].api.queues is not None
    assert endpoints["/other"].identity == "agent" and endpoints["/other"].api is None


def test_port_and_host_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MESHAGENT_PORT", "9123")
    monkeypatch.setenv("MESHAGENT_HOST", "127.0.0.1")
    host = ServiceHost()
    assert (host.host, host.port) == ("127.0.0.1", 9123)
    assert host.service_spec()["ports"][0]["num"] == 9123
    monkeypatch.delenv("MESHAGENT_PORT")
    assert ServiceHost().service_spec()["ports"][0]["num"] == "*"  # auto port, as MeshAgent's
    monkeypatch.setenv("MESHAGENT_PORT", "eighty")
    with pytest.raises(ValueError, match="MESHAGENT_PORT must be a port number"):
        ServiceHost()


async def test_a_room_call_joins_the_room_under_the_tokens_identity(server):
    host = ServiceHost(host="127.0.0.1", port=0)
    host.add_path("/agent", cls=Recorder, identity="recorder")
    async with serving(host) as http:
        response = await http.post("/agent", json=call_body(server))
        assert response.json() == {"ok": True}
        async with asyncio.timeout(TIMEOUT):
            room = await Recorder.started.get()
        assert room.participant_name == "recorder"
        assert any(p["attributes"].get("name") == "recorder" for p in server.participants(ROOM))
    # stopping the host stops the agent and leaves the room
    assert Recorder.stopped.is_set()
    assert not server.participants(ROOM)


@pytest.mark.parametrize(("request_kwargs", "status", "message"), [
    ({"content": b"not json"}, 400, "not JSON"),
    ({"json": [1, 2]}, 400, "JSON object"),
    ({"json": {"event": "room.call", "data": {"room_name": "r"}}}, 400, "room_url, token"),
    ({"json": {"event": "room.call", "data": {"room_name": "r", "room_url": "ws://x/y",
                                              "token": "t"}}}, 400, "not a room URL"),
])
async def test_bad_calls_get_a_clear_error(request_kwargs, status, message):
    host = ServiceHost(host="127.0.0.1", port=0)
    host.add_path("/agent", cls=Recorder)
    async with serving(host) as http:
        response = await http.post("/agent", **request_kwargs)
        assert response.status_code == status
        assert message in response.json()["error"]
        # other events are accepted and ignored, as MeshAgent's host does
        ignored = await http.post("/agent", json={"event": "room.ended", "data": {"room_name": "r"}})
        assert ignored.json() == {"ok": True}
        assert (await http.get("/agent")).status_code == 405
        with pytest.raises(InvalidStatus) as refused:  # the websocket variant of the call
            await websockets.connect(host.url.replace("http", "ws", 1) + "/agent")
        assert refused.value.response.status_code == 501
        assert b"POST webhook" in refused.value.response.body
    assert Recorder.started.empty()


async def test_a_webhook_secret_requires_the_meshagent_signature(server):
    host = ServiceHost(host="127.0.0.1", port=0, webhook_secret=SECRET)
    host.add_path("/agent", cls=Recorder, identity="recorder")
    body = call_body(server)
    async with serving(host) as http:
        assert (await http.post("/agent", json=body)).status_code == 401
        digest = hashlib.sha256(json.dumps(body).encode()).hexdigest()
        forged = jwt.encode({"sha256": digest}, "not-the-secret-" * 3, algorithm="HS256")
        refused = await http.post("/agent", content=json.dumps(body),
                                  headers={"Meshagent-Signature": f"Bearer {forged}",
                                           "content-type": "application/json"})
        assert refused.status_code == 401
        signed = jwt.encode({"sha256": digest}, SECRET, algorithm="HS256")
        accepted = await http.post("/agent", content=json.dumps(body),
                                   headers={"Meshagent-Signature": f"Bearer {signed}",
                                            "content-type": "application/json"})
        assert accepted.json() == {"ok": True}
        async with asyncio.timeout(TIMEOUT):
            await Recorder.started.get()


def test_paths_are_checked():
    host = ServiceHost(port=0)
    host.add_path("/a", cls=Recorder)
    with pytest.raises(ValueError, match="already served"):
        host.add_path("/a", cls=Recorder)
    with pytest.raises(ValueError, match="starts with '/'"):
        host.add_path("a", cls=Recorder)


async def test_the_docs_worker_api_in_a_service_host(server, monkeypatch):
    """The docs' sample shape: StorageToolkit() with no room, tool_adapter=, and a
    process_message override without room=; the demo LLM script saves poem.txt."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("MESHAGENT_API_URL", server.url)
    server.long_poll_window = 0.5
    processed: asyncio.Queue[Any] = asyncio.Queue()
    host = ServiceHost(host="127.0.0.1", port=0)

    @host.path(path="/worker", identity="worker")
    class StorageWorker(Worker):
        def __init__(self):
            super().__init__(
                queue="worker-queue",
                name="worker",
                llm_adapter=OpenAIResponsesAdapter(),
                tool_adapter=OpenAIResponsesToolResponseAdapter(),
                toolkits=[StorageToolkit()],
                rules=["Save results to room storage."],
            )

        async def process_message(self, *, chat_context, message, toolkits):
            response = await super().process_message(
                chat_context=chat_context, message=message, toolkits=toolkits
            )
            await processed.put(response)
            return response

    token = server.mint_token(room=ROOM, name="sender")
    async with serving(host) as http, RoomClient(server.url, ROOM, token) as sender:
        assert (await http.post("/worker", json=call_body(server, "worker"))).json() == {"ok": True}
        await sender.queues.send("worker-queue", {"prompt": "write a poem about AI"})
        async with asyncio.timeout(TIMEOUT):
            answer = await processed.get()
        assert answer == "I saved a poem about AI to poem.txt."
        poem = (await sender.storage.download("poem.txt")).text
        assert poem.startswith("We taught the sand to count")


async def test_a_storage_toolkit_without_a_room_says_so():
    toolkit = StorageToolkit()
    with pytest.raises(ToolError, match="no room"):
        await toolkit.get("write_file").execute({"path": "a.txt", "text": "x", "overwrite": True})
