"""Record a conversation through ``localmesh llm record``'s proxy, then replay it offline.

The upstream is a stand-in on 127.0.0.1: another emulator's scripted endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import yaml

from localmesh.emulator import RoomServer
from localmesh.emulator.llm.record_proxy import RecordingProxy
from localmesh.scripted_llm import loads_script

ROOM = "rec"
TOOLS = [{"type": "function", "name": "write_file", "parameters": {"type": "object"}}]


def _essence(response: dict[str, Any]) -> list[tuple]:
    """What a client acts on: the calls (name, arguments, call id) and the text."""
    out = []
    for item in response["output"]:
        if item["type"] == "function_call":
            out.append(("call", item["name"], item["arguments"], item["call_id"]))
        elif item["type"] == "message":
            out.append(("text", "".join(part["text"] for part in item["content"])))
    return out


async def _conversation(client: httpx.AsyncClient, base: str, key: str) -> list[list[tuple]]:
    """Two turns, a tool call then its result, as an agent runs them; the second streamed."""
    headers = {"authorization": f"Bearer {key}"}
    first = await client.post(f"{base}/responses", headers=headers, json={
        "model": "gpt-test", "input": "save a poem about ai to poem.txt", "tools": TOOLS})
    assert first.status_code == 200, first.text
    call = first.json()["output"][0]
    follow_up = [
        {"role": "user", "content": "save a poem about ai to poem.txt"},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "saved poem.txt"},
    ]
    second = await client.post(f"{base}/responses", headers=headers, json={
        "model": "gpt-test", "input": follow_up, "tools": TOOLS, "stream": True})
    assert second.status_code == 200, second.text
    completed = next(
        line for line in second.text.splitlines() if '"response.completed"' in line
    )
    return [_essence(first.json()), _essence(json.loads(completed[len("data:"):])["response"])]


async def test_a_recorded_conversation_replays_offline(tmp_path: Path) -> None:
    out = tmp_path / "recorded.yaml"
    async with RoomServer() as upstream, httpx.AsyncClient() as client:
        secret = upstream.mint_token(room=ROOM, name="recorder")
        async with RecordingProxy(f"{upstream.url}/openai/v1", out) as proxy:
            recorded = await _conversation(client, f"{proxy.url}/v1", secret)

    text = out.read_text()
    assert secret not in text and "authorization" not in text.lower()
    script = yaml.safe_load(text)
    assert [rule["name"] for rule in script["rules"]] == ["recorded-1", "recorded-2"]
    assert recorded[0][0][:2] == ("call", "write_file")
    assert recorded[1][0][0] == "text"

    # Offline: a fresh emulator plays the recording, and answers the same conversation alike.
    async with RoomServer(llm_script=out) as replay, httpx.AsyncClient() as client:
        key = replay.mint_token(room=ROOM, name="replayer")
        replayed = await _conversation(client, f"{replay.url}/openai/v1", key)
        assert [entry.rule for entry in replay.llm.transcript(ROOM)] == ["recorded-1", "recorded-2"]
    assert replayed == recorded


async def test_upstream_errors_are_recorded_as_error_answers(tmp_path: Path) -> None:
    out = tmp_path / "errors.yaml"
    async with RoomServer() as upstream, httpx.AsyncClient() as client:
        key = upstream.mint_token(room=ROOM, name="recorder")
        upstream.llm.set_script(ROOM, loads_script(
            "rules: [{answer: {error: {status: 429, message: slow down}}}]", "upstream.yaml"))
        async with RecordingProxy(f"{upstream.url}/openai/v1", out, api_key=key) as proxy:
            answer = await client.post(f"{proxy.url}/v1/responses", json={"model": "m", "input": "hi"})
    assert answer.status_code == 429
    rule = yaml.safe_load(out.read_text())["rules"][0]
    assert rule["answer"] == {"error": {"status": 429, "message": "slow down"}}
    assert key not in out.read_text()
