"""docs/llm-providers.md: its endpoint table, environment, script and examples are the code's.

The Python examples run as written against a real emulator; only the URL is changed to the
test server's.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from doc_blocks import ROOT, block, run_async_snippet

from localmesh.emulator import RoomServer
from localmesh.emulator.llm.endpoints import COUNT_TOKENS, ENDPOINTS
from localmesh.protocol.llm_urls import llm_environment
from localmesh.scripted_llm import ScriptPlayer, load_demo_script, loads_script
from localmesh.scripted_llm.providers import ANTHROPIC_MESSAGES, CHAT_COMPLETIONS, RESPONSES

DOC = "docs/llm-providers.md"
LOCAL = "http://127.0.0.1:8765"
POEM = load_demo_script().rules[0].answer.calls[0].arguments["text"]
SAVED = "I saved a poem about AI to poem.txt."


def _table_rows() -> list[tuple[str, str]]:
    text = (ROOT / DOC).read_text(encoding="utf-8")
    section = text.split("## Endpoints", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| `(\w+)` \| `POST ([^`]+)` \|", section, re.M)


def test_the_endpoint_table_is_what_the_emulator_serves() -> None:
    served = {(e.provider, e.path) for e in ENDPOINTS}
    served |= {(path.split("/")[1], path) for path in COUNT_TOKENS if path.startswith("/anthropic")}
    assert set(_table_rows()) == served


def test_the_environment_block_is_what_localmesh_env_exports() -> None:
    shown = dict(re.findall(r"^export (\w+)=(\S+)$", block(DOC, "bash", "ANTHROPIC_BASE_URL"), re.M))
    assert shown == llm_environment(LOCAL)


def test_the_script_tells_the_providers_apart() -> None:
    script = loads_script(block(DOC, "yaml", "claude-only"), "providers.yaml")
    player = ScriptPlayer(script)

    def text(reply: Any) -> str:
        assert reply.error is None, reply.error
        return str(reply.response)

    claude = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    chat = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
    responses = {"model": "gpt-4.1", "input": "hi"}
    assert "Anthropic route" in text(player.play(claude, wire=ANTHROPIC_MESSAGES, provider="anthropic"))
    assert "Hello from Grok" in text(player.play(responses, wire=RESPONSES, provider="grok"))
    assert "Chat Completions" in text(player.play(chat, wire=CHAT_COMPLETIONS, provider="openai"))
    assert "OpenAI Responses" in text(player.play(responses, wire=RESPONSES, provider="openai"))
    assert "OpenAI Responses" in text(player.play(claude, wire=ANTHROPIC_MESSAGES, provider="grok"))


@pytest.mark.parametrize("containing", ["import anthropic", "import openai"])
async def test_the_plain_client_examples_run(
    localmesh_server: RoomServer, capsys: pytest.CaptureFixture[str], containing: str
) -> None:
    code = block(DOC, "python", containing)
    assert code.count(LOCAL) == 1
    code = code.replace(LOCAL, localmesh_server.url)
    token = localmesh_server.mint_token(room="docs", name="reader")
    found = await run_async_snippet(code, {"token": token})
    assert found["call"].id == "call_save-poem_1"
    assert capsys.readouterr().out.strip() == SAVED
    entries = localmesh_server.llm.transcript("docs")
    assert [e.rule for e in entries] == ["save-poem", "poem-saved"]
    assert {e.provider for e in entries} == {"anthropic" if "anthropic" in containing else "openai"}


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
async def test_the_real_sdk_worker_example_runs(
    localmesh_server: RoomServer, meshagent_room: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    localmesh_server.long_poll_window = 0.3
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_MAX_TOKENS", "MESHAGENT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in localmesh_server.env().items():  # eval "$(localmesh env)"
        monkeypatch.setenv(name, value)
    async with meshagent_room("docs", name="worker") as room, meshagent_room("docs") as sender:
        found = await run_async_snippet(block(DOC, "python", "from meshagent.agents.worker"), {"room": room})
        saved = asyncio.Event()
        sender.storage.on("file.updated", lambda **event: saved.set())
        try:
            await sender.queues.send(name="tasks", message={"prompt": "save a poem about ai to poem.txt"})
            async with asyncio.timeout(20):
                await saved.wait()
        finally:
            async with asyncio.timeout(10):
                await found["worker"].stop()
        assert (await sender.storage.download(path="poem.txt")).data.decode() == POEM
    assert localmesh_server.llm.transcript("docs")[0].provider == "anthropic"


async def test_the_pytest_example_runs(localmesh_worker: Any, localmesh_room: Any) -> None:
    namespace: dict[str, Any] = {}
    exec(block(DOC, "python", "async def test_a_claude_worker"), namespace)  # noqa: S102
    await namespace["test_a_claude_worker_saves_the_poem"](localmesh_worker, localmesh_room)


def test_the_cli_example_is_the_issue_reproduction_the_compat_test_runs() -> None:
    shown = " ".join(block(DOC, "bash", "meshagent worker join").replace("\\\n", " ").split())
    compat = (ROOT / "tests/compat/test_compat_cli.py").read_text(encoding="utf-8")
    assert "--model claude-sonnet-4-5 --rule save results" in shown.replace('"', "")
    for argument in ('"--model", "claude-sonnet-4-5"', '"--rule", "save results"', '"--room=quickstart"',
                     '"--queue=tasks"', '"--storage"'):
        assert argument in compat
