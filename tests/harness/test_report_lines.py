"""The failure report's transcript lines read the answers of every API the engine speaks."""

from __future__ import annotations

import pytest

from localmesh.fixtures.report import transcript_lines
from localmesh.scripted_llm import ScriptPlayer, loads_script
from localmesh.scripted_llm.providers import ANTHROPIC_MESSAGES, CHAT_COMPLETIONS, RESPONSES

SCRIPT = """
rules:
  - name: save
    match: {user: save, tool_result: false}
    answer: {calls: [{name: write_file, arguments: {path: a.txt, text: hi}}]}
  - name: done
    match: {tool_result: {name: write_file}}
    answer: {text: Saved it.}
"""

FIRST = {
    "responses": {"model": "m", "input": "save it"},
    "chat": {"model": "m", "messages": [{"role": "user", "content": "save it"}]},
    "messages": {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "save it"}]},
}


def _second(api: str, first: dict, answer: dict) -> dict:
    """The follow-up request that carries the tool's result, in the API's own shapes."""
    if api == "responses":
        call = answer["output"][0]
        return {"model": "m", "input": [*[{"role": "user", "content": "save it"}], call,
                                        {"type": "function_call_output", "call_id": call["call_id"],
                                         "output": "the file was saved"}]}
    if api == "chat":
        message = answer["choices"][0]["message"]
        return {"model": "m", "messages": [*first["messages"], message, {
            "role": "tool", "tool_call_id": message["tool_calls"][0]["id"],
            "content": "the file was saved"}]}
    use = answer["content"][0]
    return {"model": "m", "max_tokens": 100, "messages": [
        *first["messages"], {"role": "assistant", "content": answer["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"],
                                      "content": "the file was saved"}]}]}


@pytest.mark.parametrize(("api", "wire"), [
    ("responses", RESPONSES), ("chat", CHAT_COMPLETIONS), ("messages", ANTHROPIC_MESSAGES)])
async def test_calls_results_and_text_are_shown_for_each_api(api: str, wire) -> None:
    player = ScriptPlayer(loads_script(SCRIPT, "test"))
    answer = await player.respond(FIRST[api], wire=wire)
    await player.respond(_second(api, FIRST[api], answer), wire=wire)
    first, second = transcript_lines(player.transcript)
    assert "user 'save it': rule 'save' -> calls write_file(path='a.txt', text='hi')" in first
    assert "tool result 'the file was saved': rule 'done' -> says 'Saved it.'" in second
