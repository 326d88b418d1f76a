"""Tools an LLM can call: ``Tool``, ``Toolkit``, the ``@tool`` decorator, and ``StorageToolkit``.

A tool is a name, a JSON schema for its arguments and an (async or plain) function taking
those arguments as keywords. Its return value is turned into the model's
``function_call_output`` text by a ``ToolResponseAdapter`` (``localmesh.worker.tool_results``).
"""

from __future__ import annotations

import inspect
import posixpath
import re
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from localmesh.protocol.error_codes import STORAGE_ALREADY_EXISTS
from localmesh.worker.errors import RoomError

if TYPE_CHECKING:
    from localmesh.worker.room import RoomClient

ToolFunction = Callable[..., Any | Awaitable[Any]]


class ToolError(Exception):
    """A tool refused its arguments; the model is told why."""


@dataclass
class FileResult:
    """A file returned by a tool. Text-like files reach the model as their text."""

    name: str
    mime_type: str
    data: bytes


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    function: ToolFunction
    title: str = ""
    strict: bool = True

    async def execute(self, arguments: dict[str, Any]) -> Any:
        result = self.function(**arguments)
        if inspect.isawaitable(result):
            result = await result
        return result

    def definition(self) -> dict[str, Any]:
        """The Responses API ``function`` tool for this tool."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
            "strict": self.strict,
        }


@dataclass
class Toolkit:
    """A named group of tools; the name is the namespace the LLM sees."""

    name: str
    tools: list[Tool] = field(default_factory=list)
    title: str = ""
    description: str = ""

    def get(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)

    def bound_to(self, room: RoomClient) -> Toolkit:
        """This toolkit for use in ``room`` (a Worker binds its toolkits as it works).
        Toolkits that do not need a room are returned as they are."""
        return self

    def tool(
        self,
        function: ToolFunction | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Any:
        """Decorator: declare a tool (see ``tool``) and add it to this toolkit."""

        def add(fn: ToolFunction) -> ToolFunction:
            self.tools.append(tool(fn, name=name, description=description, parameters=parameters))
            return fn

        return add(function) if function is not None else add

    def definition(self) -> dict[str, Any]:
        """The Responses API ``namespace`` tool grouping this toolkit's functions."""
        return {
            "type": "namespace",
            "name": self.name,
            "description": self.description or self.title or self.name,
            "tools": [t.definition() for t in self.tools],
        }


def tool(
    function: ToolFunction | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    strict: bool = True,
) -> Any:
    """Make a ``Tool`` from a function; use bare (``@tool``) or with options.

    The schema comes from the type hints unless ``parameters`` is given; the description
    from the docstring unless ``description`` is given. With ``strict`` (the default, as
    the OpenAI Responses API expects) every parameter is required, and a parameter with a
    default accepts ``null``, which calls the function with its default.
    """

    def make(fn: ToolFunction) -> Tool:
        schema = parameters if parameters is not None else schema_from_signature(fn)
        call = fn if parameters is not None else _nulls_mean_defaults(fn)
        return Tool(
            name=name or fn.__name__,
            description=description or inspect.getdoc(fn) or "",
            parameters=schema,
            function=call,
            title=(name or fn.__name__).replace("_", " "),
            strict=strict,
        )

    return make(function) if function is not None else make


_SIMPLE_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def json_schema_for(annotation: Any) -> dict[str, Any]:
    """A JSON schema for a type hint: str/int/float/bool, list[X], dict, Literal, X | None."""
    if annotation in _SIMPLE_TYPES:
        return {"type": _SIMPLE_TYPES[annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        return {"type": "array", "items": json_schema_for(args[0]) if args else {}}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        schema = json_schema_for(options[0]) if len(options) == 1 else {
            "anyOf": [json_schema_for(a) for a in options]
        }
        return _nullable(schema) if len(options) < len(args) else schema
    raise TypeError(f"no JSON schema for the type hint {annotation!r}; pass parameters=")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def schema_from_signature(function: ToolFunction) -> dict[str, Any]:
    hints = typing.get_type_hints(function)
    properties: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name not in hints:
            raise TypeError(
                f"parameter {parameter.name!r} of {function.__name__} needs a type hint"
            )
        schema = json_schema_for(hints[parameter.name])
        if parameter.default is not parameter.empty and "null" not in str(schema):
            schema = _nullable(schema)
        properties[parameter.name] = schema
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def _nulls_mean_defaults(function: ToolFunction) -> ToolFunction:
    defaults = {
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.default is not p.empty
    }

    def call(**arguments: Any) -> Any:
        return function(
            **{k: v for k, v in arguments.items() if not (v is None and k in defaults)}
        )

    return call


# ---------------------------------------------------------------- the storage toolkit

DEFAULT_MAX_LENGTH = 20000
# Read as sync documents by MeshAgent's StorageToolkit whatever the schemas say.
SYNC_DOCUMENT_EXTENSIONS = frozenset({"thread", "transcript"})
TRUNCATED = "\n\n[truncated: call again with a larger offset to read on]"
_TEXT_MIME_TYPES = {"application/json", "application/xml", "application/javascript",
                    "application/yaml", "application/x-yaml"}
_TEXT_EXTENSIONS = {".json", ".jsonl", ".ndjson", ".yaml", ".yml", ".geojson", ".md", ".txt"}


def is_text_like(mime_type: str | None, path: str) -> bool:
    kind = (mime_type or "").split(";")[0].strip().lower()
    if kind.startswith("text/") or kind in _TEXT_MIME_TYPES or kind.endswith("+json"):
        return True
    return any(path.lower().endswith(ext) for ext in _TEXT_EXTENSIONS)


def room_path(path: str) -> str:
    """Map the tool's virtual path (``/out/a.txt``) to a room storage path (``out/a.txt``)."""
    parts = [part for part in path.strip().split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ToolError(f"path {path!r} may not contain '.' or '..' segments")
    return "/".join(parts)


def _offset(value: Any, name: str = "offset") -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ToolError(f"{name} must be null or a non-negative integer")
    return value


def _window(text: str, offset: int, max_length: int) -> str:
    rest = text[offset:]
    if len(rest) <= max_length:
        return rest
    return rest[: max(0, max_length - len(TRUNCATED))] + TRUNCATED


def grep_lines(
    text: str, pattern: str, before: int = 0, after: int = 0, first_line: int = 1
) -> str:
    """Lines of ``text`` matching ``pattern``, grep-style: ``N: line`` for a match,
    ``N- line`` for context, ``--`` between separate groups."""
    if not pattern.strip():
        raise ToolError("pattern must not be empty")
    try:
        regex = re.compile(pattern.strip())
    except re.error as error:
        raise ToolError(f"pattern is not a valid regular expression: {error}") from None
    lines = text.splitlines()
    matches = {i for i, line in enumerate(lines) if regex.search(line)}
    if not matches:
        return "No matches found."
    shown = sorted({
        j for i in matches for j in range(max(0, i - before), min(len(lines), i + after + 1))
    })
    out: list[str] = []
    for position, index in enumerate(shown):
        if position and index > shown[position - 1] + 1:
            out.append("--")
        out.append(f"{first_line + index}{':' if index in matches else '-'} {lines[index]}")
    return "\n".join(out)


def _schema(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": properties}


_PATH = {"type": "string", "description": "full path of the file in the room"}
_OFFSET = {"type": ["integer", "null"], "description": "character offset to start from"}


class StorageToolkit(Toolkit):
    """Room storage for an LLM, with the tool names and arguments of MeshAgent's StorageToolkit.

    The room is the root of the tool's paths: ``/reports/a.txt`` is the room file
    ``reports/a.txt``. A read-only toolkit offers only the listing and reading tools.
    Made without a room (``StorageToolkit()``, as in the MeshAgent docs), it works in the
    room of the Worker that uses it.
    """

    def __init__(
        self,
        room: RoomClient | None = None,
        *,
        read_only: bool = False,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        self._room = room
        self.read_only = read_only
        self.max_length = max_length
        tools = [
            Tool("list_files_in_room", "List the files and folders at a path in the room.",
                 _schema(["path"], {"path": {"type": "string"}}), self.list_files_in_room),
            Tool("write_file",
                 "Write a text file (plain text or source code, not binary) to the room.",
                 _schema(["path", "text", "overwrite"], {
                     "path": _PATH,
                     "text": {"type": "string", "description": "the file's new contents"},
                     "overwrite": {"type": "boolean",
                                   "description": "replace the file if it already exists"},
                 }), self.write_file),
            Tool("read_file", "Read a file from the room.",
                 _schema(["path", "offset"], {"path": _PATH, "offset": _OFFSET}), self.read_file),
            Tool("grep_file",
                 "Find the lines of a text file that match a regular expression.",
                 _schema(["path", "pattern", "offset", "before", "after"], {
                     "path": _PATH,
                     "pattern": {"type": "string", "description": "a regular expression"},
                     "offset": _OFFSET,
                     "before": {"type": ["integer", "null"],
                                "description": "context lines before each match"},
                     "after": {"type": ["integer", "null"],
                               "description": "context lines after each match"},
                 }), self.grep_file),
            Tool("save_file_from_url", "Download a URL and save it as a file in the room.",
                 _schema(["url", "path", "overwrite"], {
                     "url": {"type": "string", "description": "the URL to fetch"},
                     "path": {"type": "string", "description": "where to save it, with a name"},
                     "overwrite": {"type": "boolean",
                                   "description": "replace the file if it already exists"},
                 }), self.save_file_from_url),
        ]
        if read_only:
            tools = [t for t in tools if t.name in ("list_files_in_room", "read_file", "grep_file")]
        super().__init__(
            name="storage", tools=tools, title="storage",
            description="read, write and list files in the room's storage",
        )

    @property
    def room(self) -> RoomClient:
        if self._room is None:
            raise ToolError(
                "this StorageToolkit has no room: give it to a Worker, or pass StorageToolkit(room)"
            )
        return self._room

    def bound_to(self, room: RoomClient) -> Toolkit:
        if self._room is not None:
            return self
        return StorageToolkit(room, read_only=self.read_only, max_length=self.max_length)

    async def list_files_in_room(self, path: str) -> dict[str, Any]:
        entries = await self.room.storage.list(room_path(path))
        return {"files": [
            {"name": e.name, "is_folder": e.is_folder, "size": e.size,
             "created_at": e.created_at, "updated_at": e.updated_at}
            for e in entries
        ]}

    async def write_file(self, path: str, text: str, overwrite: bool) -> str:
        await self.room.storage.upload(room_path(path), text.encode(), overwrite=overwrite)
        return "the file was saved"

    async def _read(self, path: str) -> FileResult:
        """Download ``path``, making the same room calls as MeshAgent's StorageToolkit: a file
        with an extension ``.x`` is first checked against ``.schemas/x.json``; such a file
        (and any ``.thread``/``.transcript``) is a sync document there, which localmesh does
        not emulate, so the tool says so instead of reading it."""
        target = room_path(path)
        extension = posixpath.splitext(target)[1].lstrip(".")
        if extension and (
            extension in SYNC_DOCUMENT_EXTENSIONS
            or await self.room.storage.exists(f".schemas/{extension}.json")
        ):
            raise ToolError(
                f"{path} is a sync document (.{extension}); localmesh does not emulate sync "
                "documents, so it cannot be read as a file"
            )
        file = await self.room.storage.download(target)
        return FileResult(file.name, file.mime_type, file.data)

    async def read_file(self, path: str, offset: int | None = None) -> str | FileResult:
        file = await self._read(path)
        if not is_text_like(file.mime_type, path):
            return file
        text = file.data.decode("utf-8", errors="replace")
        return _window(text, _offset(offset), self.max_length)

    async def grep_file(
        self, path: str, pattern: str, offset: int | None = None,
        before: int | None = None, after: int | None = None,
    ) -> str:
        file = await self._read(path)
        if file.mime_type.startswith("image/") or file.mime_type == "application/pdf":
            return "grep_file cannot search images or PDFs; use read_file."
        text = file.data.decode("utf-8", errors="replace")
        start = _offset(offset)
        if start >= len(text):
            return "No matches found."
        found = grep_lines(text[start:], pattern, _offset(before, "before"),
                           _offset(after, "after"), first_line=text.count("\n", 0, start) + 1)
        return _window(found, 0, self.max_length)

    async def save_file_from_url(self, url: str, path: str, overwrite: bool) -> None:
        import httpx

        target = room_path(path)
        async with httpx.AsyncClient(follow_redirects=True) as client:
            response = await client.get(url)
        if response.status_code >= 400:
            raise ToolError(f"fetching {url} failed with HTTP {response.status_code}")
        if not overwrite and await self.room.storage.exists(target):
            raise RoomError(f"a file already exists at {target}", STORAGE_ALREADY_EXISTS)
        await self.room.storage.upload(
            target, response.content, overwrite=overwrite,
            mime_type=response.headers.get("content-type", "").split(";")[0] or None,
        )
