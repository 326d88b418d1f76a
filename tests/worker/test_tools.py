"""Declaring tools, rendering their results, and matching MeshAgent's StorageToolkit."""

from __future__ import annotations

import json
from typing import Literal

import pytest

from localmesh.protocol.wire import Content, error_content, json_content
from localmesh.worker import (
    FileResult,
    RoomError,
    StorageToolkit,
    ToolError,
    Toolkit,
    ToolResponseAdapter,
    tool,
)
from localmesh.worker.tools import grep_lines, room_path


def test_tool_schema_comes_from_type_hints_and_docstring() -> None:
    @tool
    async def resize(path: str, width: int, mode: Literal["fit", "fill"], scale: float | None = None):
        """Resize an image."""
        return f"{path} {width} {mode} {scale}"

    assert resize.name == "resize"
    assert resize.description == "Resize an image."
    assert resize.parameters == {
        "type": "object",
        "additionalProperties": False,
        "required": ["path", "width", "mode", "scale"],
        "properties": {
            "path": {"type": "string"},
            "width": {"type": "integer"},
            "mode": {"enum": ["fit", "fill"]},
            "scale": {"type": ["number", "null"]},
        },
    }


async def test_null_for_a_defaulted_argument_uses_the_default() -> None:
    @tool(name="greet", description="Say hello.")
    def greet(name: str, punctuation: str = "!") -> str:
        return f"hello {name}{punctuation}"

    assert await greet.execute({"name": "ada", "punctuation": None}) == "hello ada!"


def test_explicit_schema_and_toolkit_decorator() -> None:
    toolkit = Toolkit("math", description="arithmetic")
    schema = {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}

    @toolkit.tool(parameters=schema, description="Negate a number.")
    def negate(a: float) -> float:
        return -a

    assert toolkit.definition() == {
        "type": "namespace",
        "name": "math",
        "description": "arithmetic",
        "tools": [{"type": "function", "name": "negate", "description": "Negate a number.",
                   "parameters": schema, "strict": True}],
    }


def test_a_hint_without_a_schema_is_an_error() -> None:
    with pytest.raises(TypeError):
        @tool
        def bad(thing: object) -> None: ...


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("the file was saved", "the file was saved"),
        (None, "ok"),
        ({"files": []}, '{"files": []}'),
        (json_content({"a": 1}), '{"a": 1}'),
        (Content({"type": "empty"}), "ok"),
        (error_content("nope", 3001), "Error (code=3001): nope"),
        (FileResult("a.txt", "text/plain", b"hi"), "hi"),
        (FileResult("a.png", "image/png", b"\x89PNG"), "a.png"),
    ],
)
def test_tool_results_become_output_strings(result, expected: str) -> None:
    assert ToolResponseAdapter().to_output(result) == expected


def test_a_raised_error_becomes_a_json_error_output() -> None:
    output = ToolResponseAdapter().error_output(RoomError("file not found", 3001))
    assert json.loads(output) == {"error": "unable to complete tool call: file not found"}


def test_virtual_paths_map_to_room_paths() -> None:
    assert room_path("/out/a.txt") == "out/a.txt"
    assert room_path("/") == ""
    with pytest.raises(Exception, match="'..'"):
        room_path("/out/../secret")


def test_grep_marks_matches_and_context() -> None:
    text = "alpha\nbeta\ngamma\ndelta\nepsilon"
    assert grep_lines(text, "gamma", before=1) == "2- beta\n3: gamma"
    assert grep_lines(text, "alpha|epsilon") == "1: alpha\n--\n5: epsilon"
    assert grep_lines(text, "zeta") == "No matches found."


def _shape(schema: dict) -> dict:
    """Names, required list and types: what a script's arguments must fit."""
    return {
        "required": schema["required"],
        "additionalProperties": schema.get("additionalProperties"),
        "types": {name: prop.get("type") for name, prop in schema["properties"].items()},
    }


def test_storage_tools_match_the_real_meshagent_storage_toolkit(tmp_path) -> None:
    from meshagent.tools.storage import StorageToolkit as RealStorageToolkit
    from meshagent.tools.storage import StorageToolLocalMount

    real = RealStorageToolkit(mounts=[StorageToolLocalMount(path="/", local_path=str(tmp_path))])
    ours = StorageToolkit(room=None)  # type: ignore[arg-type]  # no call is made
    assert ours.name == real.name == "storage"
    assert [t.name for t in ours.tools] == [t.name for t in real.tools]
    for mine, theirs in zip(ours.tools, real.tools, strict=True):
        assert _shape(mine.parameters) == _shape(theirs.input_schema), mine.name


def test_read_only_storage_offers_only_reading_tools() -> None:
    names = [t.name for t in StorageToolkit(room=None, read_only=True).tools]  # type: ignore[arg-type]
    assert names == ["list_files_in_room", "read_file", "grep_file"]


class _CallLog:
    """``storage``/``sync`` stand-ins recording the room calls a toolkit makes."""

    def __init__(self, schemas: set[str]) -> None:
        self.calls: list[tuple[str, str]] = []
        self.schemas = schemas

    async def exists(self, path: str) -> bool:
        self.calls.append(("exists", path))
        return path in self.schemas

    async def download(self, path: str):
        from meshagent.api.messaging import FileContent

        self.calls.append(("download", path))
        return FileContent(data=b"alpha\nbeta\n", name=path.rsplit("/", 1)[-1], mime_type="text/plain")

    async def describe(self, path: str) -> dict:
        self.calls.append(("sync.describe", path))
        return {}


READS = ["/notes/a.txt", "notes/b", "/doc.grid", "/chat.thread", "/x.transcript", "/deep/er/c.md"]
SCHEMAS = {".schemas/grid.json"}


async def test_read_file_makes_the_same_room_calls_as_meshagents() -> None:
    from meshagent.api import RoomClient as RealRoomClient
    from meshagent.tools.storage import StorageToolkit as RealStorageToolkit
    from meshagent.tools.storage import StorageToolRoomMount

    class RealRoom(RealRoomClient):
        def __init__(self, log: _CallLog) -> None:  # no connection: only storage and sync
            self.storage = log
            self.sync = type("Sync", (), {"describe": staticmethod(log.describe)})()

    class OurRoom:
        def __init__(self, log: _CallLog) -> None:
            self.storage = log

    for tool_name, extra in [("read_file", {}), ("grep_file", {"pattern": "beta", "before": None,
                                                               "after": None})]:
        for path in READS:
            real_log, our_log = _CallLog(SCHEMAS), _CallLog(SCHEMAS)
            real = RealStorageToolkit(mounts=[StorageToolRoomMount(path="/", room=RealRoom(real_log))])
            ours = StorageToolkit(OurRoom(our_log))  # type: ignore[arg-type]
            real_tool = next(t for t in real.tools if t.name == tool_name)
            await real_tool.execute(None, path=path, offset=None, **extra)
            sync_document = real_log.calls[-1][0] == "sync.describe"
            if sync_document:
                with pytest.raises(ToolError, match="sync document"):
                    await ours.get(tool_name).execute({"path": path, "offset": None, **extra})
                assert our_log.calls == real_log.calls[:-1], path  # the same, up to the sync read
            else:
                await ours.get(tool_name).execute({"path": path, "offset": None, **extra})
                assert our_log.calls == real_log.calls, path
            assert sync_document == path.endswith((".grid", ".thread", ".transcript"))
