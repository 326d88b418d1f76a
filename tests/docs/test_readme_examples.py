"""The README's examples are true: its Python runs, its commands parse, its script behaves.

The code comes from the README's fenced blocks, so a test fails when the README changes in a way
the code does not follow. Only what a snippet leaves to the reader (its ``...``, a URL, a token)
is filled in here.
"""

from __future__ import annotations

import inspect
import json
import re

import httpx
import pytest
import yaml
from doc_blocks import ROOT, block, run_async_snippet, shell_commands
from typer.testing import CliRunner

from localmesh.cli import app
from localmesh.emulator import RoomServer
from localmesh.scripted_llm import ScriptedError, ScriptPlayer, loads_script

README = "README.md"
ENV_NAMES = re.findall(r"\b(?:MESHAGENT|OPENAI|ANTHROPIC|GROK|XAI)_[A-Z_]+",
                       block(README, "bash", 'eval "$(localmesh env)"              #'))


# ---------------------------------------------------------------- the first section


def test_the_first_section_is_the_two_commands() -> None:
    first = (ROOT / README).read_text(encoding="utf-8").split("\n---\n", 1)[0]
    commands = [line.split("#")[0].strip() for line in block(README, "bash", "quickstart.sh").splitlines()]
    assert commands == ["bash scripts/quickstart.sh", "bash scripts/test.sh"]
    assert "quickstart.sh" in first and "test.sh" in first
    assert (ROOT / "scripts" / "quickstart.sh").is_file() and (ROOT / "scripts" / "test.sh").is_file()


# ---------------------------------------------------------------- commands


def _help(words: list[str]) -> str:
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "240", "NO_COLOR": "1"})
    assert result.exit_code == 0, f"localmesh {' '.join(words)} --help: {result.output}"
    return result.output


def _expand(command: str) -> list[tuple[list[str], list[str]]]:
    """``localmesh a b|c --x [--y]`` -> [(["a", "b"], ["--x", "--y"]), (["a", "c"], [...])]."""
    tokens = command.split()[1:]
    words: list[str] = []
    for token in tokens:
        if not re.fullmatch(r"[a-z]+(\|[a-z]+)*", token):
            break
        words.append(token)
    options = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", command)))
    variants: list[list[str]] = [[]]
    for word in words:
        variants = [[*v, choice] for v in variants for choice in word.split("|")]
    return [(v, options) for v in variants]


def _documented_commands(doc: str) -> list[tuple[list[str], list[str]]]:
    found = [expanded for command in shell_commands(doc, "localmesh") for expanded in _expand(command)]
    assert found, f"{doc} shows no localmesh command"
    return found


@pytest.mark.parametrize(
    "doc", [README, "docs/worker.md", "docs/services.md", "docs/studio.md", "docs/snapshots.md"])
def test_every_documented_command_and_option_exists(doc: str) -> None:
    missing = []
    for words, options in _documented_commands(doc):
        text = _help(words)
        missing += [
            f"localmesh {' '.join(words)} {option}"
            for option in options
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)
        ]
    assert not missing, f"{doc} shows options the CLI does not have: {missing}"


def test_the_readme_shows_the_serve_env_token_and_worker_spec_options() -> None:
    shown: dict[str, set[str]] = {}
    for words, options in _documented_commands(README):
        shown.setdefault(" ".join(words), set()).update(options)
    assert {"--in-memory", "--port", "--data-dir", "--long-poll-window", "--llm-script"} <= shown["serve"]
    assert {"--room", "--name", "--role"} <= shown["token"]
    assert "env" in shown
    assert {"--agent-name", "--queue", "--require-storage"} <= shown["worker spec"]


def test_localmesh_env_prints_the_variables_the_readme_lists(tmp_path) -> None:
    result = CliRunner().invoke(app, ["env", "--data-dir", str(tmp_path / "lm")])
    assert result.exit_code == 0, result.output
    printed = re.findall(r"^export (\w+)=", result.output, re.M)
    assert printed == ENV_NAMES
    assert "MESHAGENT_TOKEN" not in result.output  # "prints no MESHAGENT_TOKEN on purpose"


def test_localmesh_token_mints_a_jwt_for_the_room(tmp_path) -> None:
    args = ["token", "--room", "quickstart", "--name", "alice", "--role", "agent"]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "lm")])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\n", result.output)


def test_localmesh_worker_spec_prints_a_service_spec() -> None:
    (command,) = [c for c in shell_commands(README, "localmesh") if c.startswith("localmesh worker spec")]
    result = CliRunner().invoke(app, command.split()[1:])
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(result.output)
    assert (spec["kind"], spec["version"]) == ("Service", "v1")
    assert spec["agents"][0]["name"] == "poet"
    assert "meshagent worker join --agent-name poet --queue tasks --require-storage" in (
        spec["container"]["command"]
    )


# ---------------------------------------------------------------- in process


async def test_the_room_server_snippet_runs() -> None:
    code = block(README, "python", "from localmesh.emulator import RoomServer")
    # Keep what the snippet shows while the server still runs (its lines only display them).
    code += "    shown = (server.url, server.api_key, server.project_id, server.env())\n"
    found = await run_async_snippet(code, {})
    url, api_key, project_id, env = found["shown"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and not url.endswith(":0")
    assert api_key.startswith("ma-") and project_id
    assert found["token"].count(".") == 2
    assert found["server"].settings.data_dir is None  # in-memory state
    # "the same variables `localmesh env` prints"
    assert list(env) == ENV_NAMES
    assert env["MESHAGENT_API_URL"] == url and env["MESHAGENT_API_KEY"] == api_key


def test_the_room_server_options_exist() -> None:
    readme = (ROOT / README).read_text(encoding="utf-8")
    (options,) = re.findall(r"`RoomServer\(([^`]*)\)`\.", readme)
    names = re.findall(r"(\w+)=", options)
    assert names
    parameters = inspect.signature(RoomServer).parameters
    assert [n for n in names if n not in parameters] == []


@pytest.mark.compat
async def test_the_real_sdk_snippet_sends_to_the_queue(localmesh_server, localmesh_room, monkeypatch) -> None:
    code = block(README, "python", "from meshagent.api import ApiScope")
    for name, value in localmesh_server.env().items():
        monkeypatch.setenv(name, value)
    await run_async_snippet(code, {})
    room = await localmesh_room("quickstart")
    assert await room.queues.receive("tasks", wait=False) == {"prompt": "hi"}


NOTES_SCRIPT = """
rules:
  - name: save
    match: {user: shopping list, instructions: Save results in room storage, tool_result: false}
    answer:
      calls:
        - {namespace: storage, name: write_file, arguments: {path: out/list.txt, text: milk, overwrite: true}}
  - name: done
    match: {tool_result: {name: storage.write_file, output: saved}}
    answer: {text: saved the list}
"""


@pytest.mark.slow
async def test_the_storage_worker_example_runs(localmesh_server, localmesh_room, monkeypatch) -> None:
    code = block(README, "python", "class StorageWorker(Worker):")
    # What the snippet leaves to the reader: the server, the token, and what happens at "...".
    assert code.count("\n    ...\n") == 1
    code = code.replace(
        "\n    ...\n", "\n    await worker.wait_for(lambda s: s.handled == 1, timeout=10)\n"
    )
    monkeypatch.setenv("MESHAGENT_API_URL", localmesh_server.url)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    localmesh_server.llm.set_script("quickstart", loads_script(NOTES_SCRIPT))
    alice = await localmesh_room("quickstart", name="alice")
    await alice.storage.upload("notes.txt", b"buy milk")
    await alice.queues.send("tasks", {"prompt": "Make the shopping list.", "notes": "notes.txt"})

    found = await run_async_snippet(
        code,
        {"api_url": localmesh_server.url,
         "token": localmesh_server.mint_token(room="quickstart", name="worker")},
    )

    stats = found["worker"].stats
    assert (stats.processed, stats.failed) == (1, 0), stats.last_error
    assert not found["worker"].running  # stopped
    assert (await alice.storage.download("out/list.txt")).text == "milk"
    transcript = localmesh_server.llm.transcript("quickstart")
    assert [entry.rule for entry in transcript] == ["save", "done"]
    # The hook's context came first; the default one still added the prompt.
    users = [item["content"] for item in transcript[0].request["input"] if item.get("role") == "user"]
    assert users == ["Notes:\nbuy milk", "Make the shopping list."]


# ---------------------------------------------------------------- the script example


def _script_text() -> str:
    return block(README, "yaml", "name: save-report")


def _user(text: str) -> dict:
    return {"model": "any", "input": [{"role": "user", "content": text}]}


async def test_the_script_example_behaves_as_described() -> None:
    player = ScriptPlayer(loads_script(_script_text(), "README.md"))

    first = await player.respond(_user("Please write the report"))
    (call,) = first["output"]
    assert (call["type"], call["namespace"], call["name"]) == ("function_call", "storage", "write_file")
    assert json.loads(call["arguments"]) == {"path": "out/report.md", "text": "# Report", "overwrite": True}

    follow_up = _user("Please write the report")
    follow_up["input"] += [call, {"type": "function_call_output", "call_id": call["call_id"],
                                  "output": "the file was saved"}]
    second = await player.respond(follow_up)
    assert second["output"][0]["content"][0]["text"] == "The report is in out/report.md."

    with pytest.raises(ScriptedError) as refused:
        await player.respond(_user("you are flaky"))
    assert (refused.value.status, refused.value.message, refused.value.retry_after) == (429, "slow down", 0)

    other = await player.respond(_user("tell me a joke"))
    assert other["output"][0]["content"][0]["text"] == "I only write reports."
    # times: once -- a second report request is not answered by save-report again
    again = await player.respond(_user("another report"))
    assert again["output"][0]["content"][0]["text"] == "I only write reports."
    assert [entry.rule for entry in player.transcript] == [
        "save-report", "done", "flaky", "fallback", "fallback"]


async def test_the_script_example_over_http_gives_429_with_retry_after() -> None:
    # "any OpenAI client": OPENAI_BASE_URL={server}/openai/v1, the API key, X-Localmesh-Room.
    async with RoomServer() as server:
        server.llm.set_script("demo", loads_script(_script_text()))
        headers = {"Authorization": f"Bearer {server.api_key}", "X-Localmesh-Room": "demo"}
        async with httpx.AsyncClient(base_url=f"{server.url}/openai/v1", headers=headers) as client:
            flaky = await client.post("/responses", json=_user("flaky"))
            assert flaky.status_code == 429
            assert flaky.headers["retry-after"] == "0"
            assert flaky.json()["error"]["message"] == "slow down"
            report = await client.post("/responses", json=_user("the report please"))
            assert report.json()["output"][0]["name"] == "write_file"
        assert [entry.rule for entry in server.llm.transcript("demo")] == ["flaky", "save-report"]


def test_the_design_tree_names_real_files() -> None:
    tree = block(README, "", "the ONE codec")
    folder = ROOT
    for indent, name in re.findall(r"^(\s*)([\w/]+\.py|[\w]+/)\s", tree, re.M):
        if not indent:
            folder = ROOT / name  # a top-level entry; the indented ones below live in it
            assert folder.exists(), f"README design tree: {name} does not exist"
        else:
            assert (folder / name).exists(), f"README design tree: {folder.name}/{name} does not exist"

