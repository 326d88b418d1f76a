"""docs/worker.md, docs/llm-scripts.md, docs/testing.md and docs/benchmarks.md: their signatures,
examples and option names match the code. The code comes from the docs' fenced blocks."""

from __future__ import annotations

import asyncio
import inspect
import random
import re
import subprocess
import sys
import textwrap

import pytest
import respx
from doc_blocks import ROOT, block, blocks, run_async_snippet

from localmesh.emulator import RoomServer
from localmesh.emulator.llm import LLMHub
from localmesh.fixtures.llm import ScriptedLLMAdapter
from localmesh.scripted_llm import ScriptError, ScriptPlayer, loads_script
from localmesh.worker import (
    AnthropicMessagesAdapter,
    Backoff,
    MessagesAdapter,
    ResponsesAdapter,
    StorageToolkit,
    Worker,
)

WORKER_MD = "docs/worker.md"
LLM_MD = "docs/llm-scripts.md"
TESTING_MD = "docs/testing.md"


def _documented_signature(text: str) -> inspect.Signature:
    """``Name(a, *, b=1, …)`` as written in a doc, read as a Python signature."""
    name, params = re.fullmatch(r"\s*(\w+)\((.*)\)\s*", text, re.S).groups()
    namespace: dict = {"asyncio": asyncio, "random": random}
    exec(f"def {name}({params}): pass", namespace)  # noqa: S102
    return inspect.signature(namespace[name])


def _assert_same_signature(
    documented: inspect.Signature, actual: inspect.Signature, internal: tuple[str, ...] = ()
) -> None:
    actual_params = [p for p in actual.parameters.values() if p.name not in ("self", *internal)]
    assert [(p.name, p.kind) for p in documented.parameters.values()] == [
        (p.name, p.kind) for p in actual_params
    ]
    for doc_param, real in zip(documented.parameters.values(), actual_params, strict=True):
        if real.default is inspect.Parameter.empty or real.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        if isinstance(doc_param.default, random.Random):  # shown as random.Random(): a fresh one
            continue
        assert doc_param.default == real.default, f"default of {real.name}"


# ---------------------------------------------------------------- docs/worker.md


def test_the_worker_signature_is_the_documented_one() -> None:
    text = block(WORKER_MD, "python", "Worker(*, queue,")
    _assert_same_signature(_documented_signature(text), inspect.signature(Worker.__init__))


def test_the_responses_adapter_signature_is_the_documented_one() -> None:
    text = block(WORKER_MD, "python", "ResponsesAdapter(transport,")
    _assert_same_signature(_documented_signature(text), inspect.signature(ResponsesAdapter.__init__))


def test_the_anthropic_adapter_signatures_are_the_documented_ones() -> None:
    text = block(WORKER_MD, "python", "MessagesAdapter(transport,")
    _assert_same_signature(_documented_signature(text), inspect.signature(MessagesAdapter.__init__))
    doc = (ROOT / WORKER_MD).read_text(encoding="utf-8")
    for factory in (AnthropicMessagesAdapter, ScriptedLLMAdapter):
        (shown,) = re.findall(rf"`({factory.__name__}\([^`]*\))`", doc)
        _assert_same_signature(_documented_signature(shown), inspect.signature(factory))


def test_the_documented_constructors_exist() -> None:
    doc = (ROOT / WORKER_MD).read_text(encoding="utf-8")
    (backoff,) = re.findall(r"`(Backoff\([^`]*\))`", doc)
    # ``attempts`` is the dataclass's state, not an option.
    _assert_same_signature(_documented_signature(backoff), inspect.signature(Backoff), ("attempts",))
    # the signature, not the `StorageToolkit()` calls the prose shows
    (storage,) = [s for s in re.findall(r"`(StorageToolkit\([^`]*\))`", doc) if "*" in s]
    _assert_same_signature(_documented_signature(storage), inspect.signature(StorageToolkit.__init__))


def test_the_tools_example_runs() -> None:
    namespace: dict = {}
    exec(block(WORKER_MD, "python", "from localmesh.worker import tool, Toolkit"), namespace)  # noqa: S102
    kit = namespace["kit"]
    assert [t.name for t in kit.tools] == ["word_count", "shout"]
    word_count = kit.get("word_count")
    assert word_count.parameters["required"] == ["text", "unique"]
    assert word_count.parameters["properties"]["unique"]["type"] == ["boolean", "null"]
    assert word_count.description == "Count the words of a text."
    assert asyncio.run(word_count.execute({"text": "a b a", "unique": None})) == 3  # null: default
    assert asyncio.run(kit.get("shout").execute({"s": "hi"})) == "HI"
    assert kit.definition()["type"] == "namespace" and kit.definition()["name"] == "text"


def test_the_room_client_block_is_python() -> None:
    code = block(WORKER_MD, "python", "await room.queues.send(")
    compile("async def _():\n" + textwrap.indent(code, "    "), WORKER_MD, "exec")


@pytest.mark.slow
async def test_the_first_worker_example_runs(localmesh_server, localmesh_room, tmp_path, monkeypatch) -> None:
    code = block(WORKER_MD, "python", 'ScriptedLLMAdapter("my-script.yaml")')
    assert code.count('"http://127.0.0.1:8765"') == 1 and code.count("\n    ...\n") == 1
    code = code.replace('"http://127.0.0.1:8765"', "server_url").replace(
        "\n    ...\n", "\n    await worker.wait_for(lambda s: s.handled == 1, timeout=10)\n"
    )
    (tmp_path / "my-script.yaml").write_text(
        "rules:\n"
        "  - match: {tool_result: false, instructions: Process queued tasks}\n"
        "    answer: {calls: [{namespace: storage, name: write_file,\n"
        "                      arguments: {path: out.txt, text: done, overwrite: true}}]}\n"
        "fallback: {text: done}\n"
    )
    monkeypatch.chdir(tmp_path)
    alice = await localmesh_room("quickstart", name="alice")
    await alice.queues.send("tasks", {"prompt": "do it"})
    found = await run_async_snippet(code, {
        "server_url": localmesh_server.url,
        "token": localmesh_server.mint_token(room="quickstart", name="worker"),
    })
    assert (found["worker"].stats.processed, found["worker"].stats.failed) == (1, 0)
    assert (await alice.storage.download("out.txt")).text == "done"


# ---------------------------------------------------------------- docs/llm-scripts.md


@pytest.mark.parametrize("index", range(len(blocks(LLM_MD, "yaml"))))
def test_every_script_in_the_llm_doc_loads(index: int) -> None:
    script = loads_script(blocks(LLM_MD, "yaml")[index], "doc.yaml")
    assert script.rules or script.fallback


INLINE_ANSWERS = re.compile(r"`((?:error|text|drop|delay|json): [^`]*)`")


@pytest.mark.parametrize("doc", [LLM_MD, TESTING_MD, "README.md"])
def test_inline_error_answers_are_valid(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    answers = [a for a in INLINE_ANSWERS.findall(text) if re.match(r"error: \{status: \d", a)]
    if doc == TESTING_MD:
        assert answers, f"{doc} has no inline error answer any more"
    for answer in answers:
        loads_script(f"fallback: {{{answer}}}", doc)


BROKEN = {
    "rules[2].answer.calls[0]": "rules:\n - {answer: {text: a}}\n - {answer: {text: b}}\n"
                                " - {answer: {calls: [{arguments: {}}]}}\n",
    "rules[0].match: unknown": "rules:\n - {match: {usr: x}, answer: {text: a}}\n",
    "rules[1].answer": "rules:\n - {answer: {text: a}}\n - {answer: {text: a, calls: [{name: x}]}}\n",
    "rules[0].match.user": "rules:\n - {match: {user: '('}, answer: {text: a}}\n",
    "rules[0]: give": "rules:\n - {match: {user: x}}\n",
}


@pytest.mark.parametrize("place", list(BROKEN))
def test_the_documented_validation_errors_are_the_real_ones(place: str) -> None:
    shown = [line for line in block(LLM_MD, "", "poem.yaml: rules[2]").splitlines() if place in line]
    assert len(shown) == 1
    with pytest.raises(ScriptError) as error:
        loads_script(BROKEN[place], "poem.yaml")
    assert str(error.value) == shown[0]


async def test_the_no_match_message_is_the_real_one() -> None:
    shown = " ".join(block(LLM_MD, "", "no script rule matched").split())
    script = loads_script(block(LLM_MD, "yaml", "name: save-poem").split("fallback:")[0], "poem.yaml")
    request = {"model": "m", "input": [{"role": "user", "content": "tell me a joke"}]}
    reply = ScriptPlayer(script).play(request)
    assert reply.error is not None and reply.error.status == 400
    assert reply.error.message == shown


async def test_the_respx_example_runs() -> None:
    openai = pytest.importorskip("openai")
    namespace: dict = {"openai": openai}
    code = block(LLM_MD, "python", "from localmesh.fixtures.llm import scripted_openai")
    assert code.count("\n    ...\n") == 1
    code = code.replace("\n    ...\n", '\n    await client.responses.create(model="m", input="hi")\n')
    exec(code, namespace)  # noqa: S102
    with respx.mock() as respx_mock:
        await namespace["test_agent"](respx_mock)


def test_the_python_api_signatures() -> None:
    doc = (ROOT / LLM_MD).read_text(encoding="utf-8")
    for cls in (ScriptPlayer, LLMHub):
        (text,) = re.findall(rf"`({cls.__name__}\([^`]*\))`", doc)
        _assert_same_signature(_documented_signature(text), inspect.signature(cls.__init__))


# ---------------------------------------------------------------- docs/testing.md


def test_the_server_fixture_attributes_exist() -> None:
    lines = (ROOT / TESTING_MD).read_text(encoding="utf-8").splitlines()
    row = next(line for line in lines if line.startswith("| `localmesh_server`"))
    names = [n for n in re.findall(r"`(\w+)(?:\(|`)", row.split("|")[2]) if n != "RoomServer"]
    assert len(names) >= 10
    assert [n for n in names if not hasattr(RoomServer, n)] == []


def test_the_project_fixture_attributes_exist() -> None:
    from localmesh.emulator.project import Project, ProjectFaults, ProjectLLM

    lines = (ROOT / TESTING_MD).read_text(encoding="utf-8").splitlines()
    row = next(line for line in lines if line.startswith("| `localmesh` |"))
    names = re.findall(r"`(?:await )?(\w+)(?:\(|`)", row.split("|")[2])
    assert len(names) >= 15
    in_init = set(re.findall(r"self\.(\w+) =", inspect.getsource(Project.__init__)))
    def exists(name: str) -> bool:  # on the project, or on its llm or faults
        return name in in_init or any(hasattr(c, name) for c in (Project, ProjectLLM, ProjectFaults))

    assert [n for n in names if not exists(n)] == []


# ---------------------------------------------------------------- docs/benchmarks.md


def test_the_benchmark_options_exist() -> None:
    doc = (ROOT / "docs/benchmarks.md").read_text(encoding="utf-8")
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", doc))
    helps = ""
    for tool in ("bench", "bench.compare_servers"):  # the page shows both tools' options
        result = subprocess.run([sys.executable, "-m", tool, "--help"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        helps += result.stdout
    assert {"--quick", "--rounds", "--pollers", "--file-mb", "--update-docs", "--no-fail"} <= options
    assert [o for o in options if o not in helps] == []


def test_the_service_sample_block_compiles_and_imports_real_names() -> None:
    import localmesh.worker

    code = block(WORKER_MD, "python", "from localmesh.worker import (OpenAIResponsesAdapter")
    compile(code, WORKER_MD, "exec")
    imported = re.search(r"from localmesh\.worker import \(([^)]*)\)", code).group(1)
    names = [name.strip() for name in imported.replace("\n", " ").split(",") if name.strip()]
    assert names and all(hasattr(localmesh.worker, name) for name in names), names
    example = (ROOT / "examples" / "worker-service" / "main.py").read_text(encoding="utf-8")
    assert all(name in example for name in names)  # the doc shows the example's API
