"""The Responses endpoint and admin API over real sockets, driven by the real MeshAgent adapter,
the plain openai client, httpx and a raw websocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import openai
import pytest
from llm_harness import LLMServer
from meshagent.api import ApiScope, ParticipantToken
from meshagent.api.participant import Participant
from meshagent.api.room_server_client import RoomException
from meshagent.openai import OpenAIResponsesAdapter
from meshagent.tools import FunctionTool, Toolkit
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from localmesh.scripted_llm import load_demo_script, transcript_json

TIMEOUT = 10


class WriteFile(FunctionTool):
    """A stand-in for the StorageToolkit's write_file, with the same arguments."""

    def __init__(self, files: dict[str, str]) -> None:
        super().__init__(
            name="write_file",
            description="write a text file",
            input_schema={
                "type": "object",
                "additionalProperties": False,
                "required": ["path", "text", "overwrite"],
                "properties": {
                    "path": {"type": "string"},
                    "text": {"type": "string"},
                    "overwrite": {"type": "boolean"},
                },
            },
        )
        self.files = files

    async def execute(self, context: Any, *, path: str, text: str, overwrite: bool) -> str:
        self.files[path] = text
        return "the file was saved"


async def run_adapter(
    server: LLMServer,
    room: str,
    *,
    mode: str = "websocket",
    prompt: str = "save a poem about AI to poem.txt",
    event_handler: Callable[[dict[str, Any]], None] | None = None,
    max_retries: int = 0,
) -> tuple[str, dict[str, str]]:
    files: dict[str, str] = {}
    adapter = OpenAIResponsesAdapter(
        model="localmesh-test",
        mode=mode,  # type: ignore[arg-type]
        base_url=server.openai_base,
        api_key=server.room_token(room),
        max_retries=max_retries,
    )
    context = adapter.create_session()
    async with context:
        context.append_rules(["You are a test agent."])
        context.append_user_message(prompt)
        async with asyncio.timeout(TIMEOUT):
            result = await adapter.create_response(
                context=context,
                caller=Participant(id="agent-1", attributes={"name": "agent"}),
                toolkits=[Toolkit(name="storage", tools=[WriteFile(files)])],
                event_handler=event_handler,
            )
    return result, files


def ws_url(server: LLMServer) -> str:
    return server.openai_base.replace("http://", "ws://") + "/responses"


def open_socket(server: LLMServer, token: str | None = None, room: str | None = None) -> connect:
    headers = {"Authorization": f"Bearer {token or server.api_key}"}
    if room is not None:
        headers["X-Localmesh-Room"] = room
    return connect(ws_url(server), additional_headers=headers, open_timeout=TIMEOUT)


async def exchange(socket: ClientConnection, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one response.create and read events up to the terminal one."""
    await socket.send(json.dumps({"type": "response.create", **body}))
    events = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            event = json.loads(await socket.recv())
            events.append(event)
            if event["type"] in ("response.completed", "error"):
                return events


def client(server: LLMServer, room: str, *, max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.openai_base,
        api_key=server.api_key,
        max_retries=max_retries,
        timeout=TIMEOUT,
        default_headers={"X-Localmesh-Room": room},
    )


# ---------------------------------------------------------------- the real MeshAgent adapter


@pytest.mark.parametrize(("mode", "streams"), [("websocket", False), ("request", False), ("request", True)])
async def test_real_adapter_runs_the_scripted_tool_call(
    llm_server: LLMServer, mode: str, streams: bool
) -> None:
    events: list[dict[str, Any]] = []
    result, files = await run_adapter(
        llm_server, "r1", mode=mode, event_handler=events.append if streams else None
    )

    assert result == "I saved a poem about AI to poem.txt."
    poem = load_demo_script().rules[0].answer.calls[0].arguments["text"]
    assert files == {"poem.txt": poem}
    entries = llm_server.hub.transcript("r1")
    transport = {"websocket": "websocket", "request": "stream" if streams else "request"}[mode]
    assert [(e.conversation, e.turn, e.rule, e.transport) for e in entries] == [
        ("conv_0001", 1, "save-poem", transport),
        ("conv_0001", 2, "poem-saved", transport),
    ]
    first, second = (e.request for e in entries)
    assert first["input"] == [{"role": "user", "content": "save a poem about AI to poem.txt"}]
    assert first["instructions"] == "You are a test agent."
    assert first["tools"][0]["name"] == "storage"
    tool_output = {
        "type": "function_call_output",
        "call_id": "call_save-poem_1",
        "output": "the file was saved",
    }
    if mode == "websocket":
        # Only the new items, chained to the previous response.
        assert second["previous_response_id"] == "resp_0001"
        assert second["input"] == [tool_output]
    else:
        assert [item.get("type", "message") for item in second["input"]] == [
            "message",
            "function_call",
            "function_call_output",
        ]
        assert second["stream"] is streams
    assert entries[1].response is not None
    assert entries[1].response["output"][0]["content"][0]["text"] == result
    if streams:
        assert {"response.completed", "response.output_item.done"} <= {e.get("type") for e in events}


async def test_the_same_flow_gives_the_same_transcript(llm_server: LLMServer) -> None:
    await run_adapter(llm_server, "one", mode="request")
    await run_adapter(llm_server, "two", mode="request")
    one = transcript_json(llm_server.hub.transcript("one")).replace('"room": "one"', '"room": "R"')
    two = transcript_json(llm_server.hub.transcript("two")).replace('"room": "two"', '"room": "R"')
    assert one == two


async def test_no_match_over_websocket_fails_the_real_adapter_at_once(llm_server: LLMServer) -> None:
    llm_server.use_script("strict", "rules: [{match: {user: never}, answer: {text: x}}]")
    with pytest.raises(RoomException) as caught:
        # The adapter retries websocket errors ten times, for minutes, unless told not to.
        await run_adapter(llm_server, "strict", max_retries=10)
    assert "localmesh: no script rule matched this request" in str(caught.value)
    assert "unsupported parameter" in str(caught.value)
    assert len(llm_server.hub.transcript("strict")) == 1


# ---------------------------------------------------------------- the plain openai client and httpx


async def test_openai_client_retries_a_scripted_429(llm_server: LLMServer) -> None:
    llm_server.use_script(
        "busy",
        """
        rules:
          - {times: once, answer: {error: {status: 429, message: slow down, retry_after: 0.01}}}
          - {answer: {text: finally}}
        """,
    )
    async with client(llm_server, "busy", max_retries=2) as llm:
        response = await llm.responses.create(model="m", input="hi")
    assert response.output_text == "finally"
    entries = llm_server.hub.transcript("busy")
    assert [(e.rule, e.error) for e in entries] == [
        ("rules[0]", {"status": 429, "message": "slow down", "retry_after": 0.01}),
        ("rules[1]", None),
    ]
    assert entries[0].request == entries[1].request  # the same request, retried


async def test_an_error_answer_has_status_body_and_retry_after(llm_server: LLMServer) -> None:
    llm_server.use_script("busy", "rules: [{answer: {error: {status: 429, message: later, retry_after: 2}}}]")
    async with llm_server.admin() as http:
        reply = await http.post(
            "/openai/v1/responses", json={"input": "x"}, headers={"X-Localmesh-Room": "busy"}
        )
    assert reply.status_code == 429 and reply.headers["retry-after"] == "2"
    assert reply.json() == {
        "error": {"message": "later", "type": "rate_limit_error", "param": None, "code": None}
    }


async def test_no_match_is_a_400_that_the_openai_client_does_not_retry(llm_server: LLMServer) -> None:
    llm_server.use_script("strict", "rules: [{name: greet, match: {user: hello}, answer: {text: hi}}]")
    with pytest.raises(openai.BadRequestError) as caught:
        async with client(llm_server, "strict", max_retries=3) as llm:
            await llm.responses.create(model="m", input="bye")
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == (  # type: ignore[index]
        "localmesh: no script rule matched this request (turn 1, latest user message 'bye'); "
        "tried: rules[0] 'greet' (user /hello/ did not match). Add a rule or a fallback to test.yaml."
    )
    assert len(llm_server.hub.transcript("strict")) == 1


async def test_streaming_sends_sse_events_then_done(llm_server: LLMServer) -> None:
    async with llm_server.admin() as http:
        reply = await http.post("/openai/v1/responses", json={"input": "hello", "stream": True})
    assert reply.headers["content-type"].startswith("text/event-stream")
    blocks = reply.text.split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""]
    kinds = [block.split("\n")[0] for block in blocks[:-2]]
    assert kinds == [
        "event: response.created",
        "event: response.output_item.done",
        "event: response.completed",
    ]
    completed = json.loads(blocks[2].split("\n")[1].removeprefix("data: "))
    assert completed["sequence_number"] == 2
    assert completed["response"]["output"][0]["type"] == "message"
    assert llm_server.hub.transcript("default")[0].transport == "stream"


async def test_an_in_stream_error_event_reaches_the_openai_client(llm_server: LLMServer) -> None:
    llm_server.use_script("s", "rules: [{answer: {error: {websocket: true, message: mid-stream failure}}}]")
    async with client(llm_server, "s") as llm:
        stream = await llm.responses.create(model="m", input="x", stream=True)
        with pytest.raises(openai.APIError, match="mid-stream failure"):
            async for _ in stream:
                pass


@pytest.mark.parametrize("streams", [False, True])
async def test_drop_cuts_the_http_connection(llm_server: LLMServer, streams: bool) -> None:
    llm_server.use_script("d", "rules: [{answer: {drop: true}}]")
    # Before the headers the openai client wraps the cut; inside a stream, httpx reports it.
    with pytest.raises(httpx.RemoteProtocolError if streams else openai.APIConnectionError):
        async with client(llm_server, "d") as llm:
            response = await llm.responses.create(model="m", input="x", stream=streams)
            async for _ in response:  # type: ignore[union-attr]
                pass
    assert [e.dropped for e in llm_server.hub.transcript("d")] == [True]


async def test_delay_uses_the_injected_sleep(llm_server: LLMServer) -> None:
    llm_server.use_script("slow", "rules: [{answer: {text: late, delay: 2.5}}]")
    async with client(llm_server, "slow") as llm:
        response = await llm.responses.create(model="m", input="x")
    assert response.output_text == "late"
    async with open_socket(llm_server, room="slow") as socket:
        events = await exchange(socket, {"input": "x"})
    assert events[-1]["type"] == "response.completed"
    assert llm_server.sleep.calls == [2.5, 2.5]


# ---------------------------------------------------------------- the websocket, raw


async def test_websocket_error_event_then_the_socket_goes_on(llm_server: LLMServer) -> None:
    llm_server.use_script(
        "w",
        """
        rules:
          - {times: once, answer: {error: {message: overloaded, code: server_busy}}}
          - {answer: {text: ok}}
        """,
    )
    async with open_socket(llm_server, room="w") as socket:
        assert await exchange(socket, {"input": "x"}) == [
            {
                "type": "error",
                "status": 500,
                "message": "overloaded",
                "code": "server_busy",
                "error": {
                    "message": "overloaded",
                    "type": "server_error",
                    "param": None,
                    "code": "server_busy",
                },
            }
        ]
        events = await exchange(socket, {"input": "x"})
    assert [(e["type"], e["sequence_number"]) for e in events] == [
        ("response.created", 0),
        ("response.output_item.done", 1),
        ("response.completed", 2),
    ]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[1]["item"] == events[2]["response"]["output"][0]
    # One socket is one conversation.
    assert [e.conversation for e in llm_server.hub.transcript("w")] == ["conv_0001", "conv_0001"]


async def test_bad_websocket_frames_get_error_events(llm_server: LLMServer) -> None:
    async with open_socket(llm_server) as socket:
        await socket.send("not json")
        async with asyncio.timeout(TIMEOUT):
            first = json.loads(await socket.recv())
        assert first["message"].startswith("localmesh: the frame is not JSON")
        assert first["message"].endswith(
            "[unsupported parameter: localmesh refuses this request, do not retry]"
        )
        await socket.send(json.dumps({"type": "response.cancel"}))
        async with asyncio.timeout(TIMEOUT):
            second = json.loads(await socket.recv())
        assert second["message"].startswith(
            "localmesh: unsupported event type 'response.cancel', expected 'response.create'"
        )
        await socket.send(b"\x00")
        async with asyncio.timeout(TIMEOUT):
            third = json.loads(await socket.recv())
        assert third["message"].startswith("localmesh: send response.create as a TEXT frame")


async def test_drop_closes_the_websocket(llm_server: LLMServer) -> None:
    llm_server.use_script("d", "rules: [{answer: {drop: true}}]")
    async with open_socket(llm_server, room="d") as socket:
        with pytest.raises(ConnectionClosedError) as caught:
            await exchange(socket, {"input": "x"})
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1011


# ---------------------------------------------------------------- rooms and authentication


def other_project_token(llm_server: LLMServer, room: str) -> str:
    """A well-formed participant JWT for ``room``, signed with a secret this emulator never had."""
    claims = jwt.decode(llm_server.room_token(room), options={"verify_signature": False})
    return jwt.encode(claims, "not-this-project's-secret-" + "x" * 32, algorithm="HS256")


def no_room_grant_token(llm_server: LLMServer) -> str:
    key = llm_server.server.state.api_key
    claims = {"name": "n", "grants": [{"name": "role", "scope": "agent"}], "kid": key.key_id}
    return jwt.encode(claims, key.secret, algorithm="HS256")


# (token factory, the emulator's reason). None: no Authorization header at all.
BAD_TOKENS: dict[str, tuple[Callable[[LLMServer], str | None], str]] = {
    "missing": (lambda s: None, "no 'Authorization: Bearer <participant token or API key>' header"),
    "not-a-jwt": (lambda s: "nope", "token is not a valid JWT: "),
    "expired": (
        lambda s: s.server.mint_token(room="r", name="n", expires_in=timedelta(minutes=-1)),
        "token has expired",
    ),
    "other-project": (
        lambda s: other_project_token(s, "r"),
        "token signature is not valid for any key of this project",
    ),
    "no-room-grant": (no_room_grant_token, "token has no room grant"),
}


def auth_headers(token: str | None, room: str | None = None) -> dict[str, str]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if room is not None:
        headers["X-Localmesh-Room"] = room
    return headers


async def test_a_participant_token_speaks_for_its_room(llm_server: LLMServer) -> None:
    llm_server.use_script("R", "fallback: {text: from R}")
    llm_server.use_script("other", "fallback: {text: from other}")
    token = llm_server.room_token("R")
    async with httpx.AsyncClient(base_url=llm_server.url, timeout=TIMEOUT) as http:
        # The header cannot move a participant to another room.
        reply = await http.post(
            "/openai/v1/responses", json={"input": "x"}, headers=auth_headers(token, "other")
        )
    assert reply.status_code == 200
    assert reply.json()["output"][0]["content"][0]["text"] == "from R"
    async with open_socket(llm_server, token=token, room="other") as socket:
        events = await exchange(socket, {"input": "y"})
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "from R"
    assert [(e.room, e.request["input"], e.transport) for e in llm_server.hub.transcript("R")] == [
        ("R", "x", "request"),
        ("R", "y", "websocket"),
    ]
    assert llm_server.hub.transcript("other") == []


async def test_a_token_made_by_the_sdk_speaks_for_its_room(llm_server: LLMServer) -> None:
    token = ParticipantToken(name="sdk-made")
    token.add_room_grant("sdk-room")
    token.add_role_grant("agent")
    token.add_api_grant(ApiScope.agent_default())
    llm_server.use_script("sdk-room", "fallback: {text: hello sdk}")
    async with openai.AsyncOpenAI(
        base_url=llm_server.openai_base, api_key=token.to_jwt(api_key=llm_server.api_key), max_retries=0
    ) as llm:
        response = await llm.responses.create(model="m", input="x")
    assert response.output_text == "hello sdk"
    assert len(llm_server.hub.transcript("sdk-room")) == 1


async def test_the_api_key_speaks_for_the_header_room_else_default(llm_server: LLMServer) -> None:
    llm_server.use_script("h", "fallback: {text: from h}")
    async with httpx.AsyncClient(base_url=llm_server.url, timeout=TIMEOUT) as http:
        with_header = await http.post(
            "/openai/v1/responses", json={"input": "x"}, headers=auth_headers(llm_server.api_key, "h")
        )
        without = await http.post(
            "/openai/v1/responses", json={"input": "x"}, headers=auth_headers(llm_server.api_key)
        )
    assert with_header.json()["output"][0]["content"][0]["text"] == "from h"
    # The default room plays the emulator's default script: the demo, whose fallback explains it.
    assert without.json()["output"][0]["content"][0]["text"].startswith("This is the localmesh demo")
    assert [len(llm_server.hub.transcript(room)) for room in ("h", "default")] == [1, 1]


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_a_refused_token_is_a_401(llm_server: LLMServer, kind: str) -> None:
    make, reason = BAD_TOKENS[kind]
    async with httpx.AsyncClient(base_url=llm_server.url, timeout=TIMEOUT) as http:
        reply = await http.post(
            "/openai/v1/responses", json={"input": "x"}, headers=auth_headers(make(llm_server), "r")
        )
    assert reply.status_code == 401
    error = reply.json()["error"]
    assert error["message"].startswith(reason)
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, None)
    assert llm_server.hub.transcript("r") == []


async def test_a_refused_token_fails_the_openai_client_without_retrying(llm_server: LLMServer) -> None:
    expired = llm_server.server.mint_token(room="r", name="n", expires_in=timedelta(seconds=-5))
    async with openai.AsyncOpenAI(base_url=llm_server.openai_base, api_key=expired, max_retries=3) as llm:
        with pytest.raises(openai.AuthenticationError, match="token has expired"):
            await llm.responses.create(model="m", input="x")


@pytest.mark.parametrize("kind", ["not-a-jwt", "expired", "other-project"])
async def test_a_refused_token_is_refused_at_the_websocket_upgrade(llm_server: LLMServer, kind: str) -> None:
    make, reason = BAD_TOKENS[kind]
    with pytest.raises(InvalidStatus) as caught:
        async with open_socket(llm_server, token=make(llm_server)):
            pass
    assert caught.value.response.status_code == 401
    assert json.loads(caught.value.response.body)["error"]["message"].startswith(reason)


async def test_the_real_adapter_with_an_expired_token_fails_at_once(llm_server: LLMServer) -> None:
    expired = llm_server.server.mint_token(room="r", name="n", expires_in=timedelta(seconds=-5))
    adapter = OpenAIResponsesAdapter(
        model="localmesh-test", mode="request", base_url=llm_server.openai_base, api_key=expired,
        max_retries=0,
    )
    context = adapter.create_session()
    async with context:
        context.append_user_message("hi")
        with pytest.raises(Exception, match="token has expired"):
            async with asyncio.timeout(TIMEOUT):
                await adapter.create_response(
                    context=context, caller=Participant(id="a", attributes={"name": "a"}), toolkits=[]
                )
    assert llm_server.hub.transcript("r") == []


async def test_a_bad_body_is_a_400(llm_server: LLMServer) -> None:
    async with llm_server.admin() as http:
        not_json = await http.post(
            "/openai/v1/responses", content=b"{", headers={"content-type": "application/json"}
        )
        not_object = await http.post("/openai/v1/responses", json=[1])
    assert not_json.status_code == 400
    assert not_json.json()["error"]["message"].startswith("We could not parse the JSON body")
    assert (not_object.status_code, not_object.json()["error"]["message"]) == (
        400,
        "the request body must be a JSON object",
    )


# ---------------------------------------------------------------- the admin API


async def test_admin_puts_a_script_and_reads_the_transcript(llm_server: LLMServer) -> None:
    async with llm_server.admin() as http:
        put = await http.put("/_localmesh/llm/rooms/a/script", content="rules: [{answer: {text: from yaml}}]")
        assert put.status_code == 200
        assert put.json() == {"room": "a", "rules": 1, "fallback": False}
        as_json = await http.put(
            "/_localmesh/llm/rooms/b/script", content=json.dumps({"fallback": {"text": "j"}})
        )
        assert as_json.json() == {"room": "b", "rules": 0, "fallback": True}

        async with client(llm_server, "a") as llm:
            response = await llm.responses.create(model="m", input="x")
        assert response.output_text == "from yaml"

        transcript = (await http.get("/_localmesh/llm/rooms/a/transcript")).json()
        assert transcript["room"] == "a"
        assert [e.to_dict() for e in llm_server.hub.transcript("a")] == transcript["entries"]
        (entry,) = transcript["entries"]
        assert (entry["rule"], entry["conversation"], entry["turn"]) == ("rules[0]", "conv_0001", 1)
        assert entry["request"]["input"] == "x" and entry["response"]["id"] == "resp_0001"
        other = await http.get("/_localmesh/llm/rooms/a/transcript", params={"conversation": "conv_0009"})
        assert other.json()["entries"] == []

        assert (await http.delete("/_localmesh/llm/rooms/a/transcript")).status_code == 204
        assert (await http.get("/_localmesh/llm/rooms/a/transcript")).json()["entries"] == []

        assert (await http.delete("/_localmesh/llm/rooms/a/script")).status_code == 204
        assert llm_server.hub.script("a").source == "demo.yaml"


async def test_admin_refuses_an_invalid_script_with_the_validation_message(llm_server: LLMServer) -> None:
    async with llm_server.admin() as http:
        bad = await http.put("/_localmesh/llm/rooms/a/script", content="rules: [{answer: {txt: x}}]")
        named = await http.put(
            "/_localmesh/llm/rooms/a/script", params={"name": "poem.yaml"}, content="rules: [{answer: {}}]"
        )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        "the script for room 'a': rules[0].answer: unknown key 'txt' "
        "(allowed: text, calls, json, error, drop, delay)"
    )
    assert named.json()["error"]["message"] == (
        "poem.yaml: rules[0].answer: give one of text, calls, json, error, drop"
    )
    assert llm_server.hub.script("a").source == "demo.yaml"  # unchanged


ROOM_TOKEN_REFUSAL = "the localmesh admin API needs the local API key, not a room token"


@pytest.mark.parametrize("kind", ["room-token", *BAD_TOKENS])
async def test_admin_needs_the_local_api_key(llm_server: LLMServer, kind: str) -> None:
    if kind == "room-token":
        token, status, message = llm_server.room_token("a"), 403, ROOM_TOKEN_REFUSAL
    else:
        make, message = BAD_TOKENS[kind]
        token, status = make(llm_server), 401
    headers = auth_headers(token)
    async with httpx.AsyncClient(base_url=llm_server.url, headers=headers, timeout=TIMEOUT) as http:
        replies = [
            await http.put("/_localmesh/llm/rooms/a/script", content="fallback: {text: x}"),
            await http.delete("/_localmesh/llm/rooms/a/script"),
            await http.get("/_localmesh/llm/rooms/a/transcript"),
            await http.delete("/_localmesh/llm/rooms/a/transcript"),
        ]
    assert [r.status_code for r in replies] == [status] * 4
    assert all(r.json()["error"]["message"].startswith(message) for r in replies)
    assert llm_server.hub.script("a").source == "demo.yaml"
