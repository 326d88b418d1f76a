"""``localmesh worker ...`` and ``localmesh room ...``: thin commands over the Python API.

The root CLI (``localmesh/cli.py``) mounts ``worker_app`` and ``room_app`` and fills in
``plugins``: how to find a local server's key, and how to play an LLM script in process. Each
command finds the server (options, then ``MESHAGENT_API_URL``/``MESHAGENT_API_KEY``, then a
local ``localmesh serve``), mints its own participant token, and calls ``worker``'s API.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from localmesh.worker.config import (
    ConfigError,
    LocalKey,
    ServerTarget,
    participant_token,
    resolve_target,
)
from localmesh.worker.errors import RoomError
from localmesh.worker.join import JoinOptions, run_join
from localmesh.worker.llm import LLMAdapter
from localmesh.worker.room import RoomClient
from localmesh.worker.spec import DEFAULT_IMAGE, dump_spec, worker_service_spec


@dataclass
class Plugins:
    """What the layer above plugs into these commands (the Worker SDK knows neither)."""

    local_key: LocalKey | None = None
    # (script path, model) -> an adapter that plays the script in process
    scripted_adapter: Callable[[Path, str | None], LLMAdapter] | None = None


plugins = Plugins()

worker_app = typer.Typer(help="Run a queue worker agent in a room.", no_args_is_help=True)
room_app = typer.Typer(help="Operate within a room: queues and storage.", no_args_is_help=True)
queue_app = typer.Typer(help="Send, receive, list and drain room queues.", no_args_is_help=True)
storage_app = typer.Typer(help="List, read and write room storage.", no_args_is_help=True)
room_app.add_typer(queue_app, name="queue")
room_app.add_typer(storage_app, name="storage")

Room = Annotated[str, typer.Option("--room", envvar="MESHAGENT_ROOM", help="the room name")]
ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url", help="server URL (default: MESHAGENT_API_URL, else a local server)"
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", help="ma- API key (default: MESHAGENT_API_KEY, else the local one)"),
]
Name = Annotated[str, typer.Option("--name", help="participant name for this command")]
Queue = Annotated[str, typer.Option("--queue", help="the queue name")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _target(api_url: str | None, api_key: str | None) -> ServerTarget:
    try:
        return resolve_target(api_url, api_key, plugins.local_key)
    except ConfigError as error:
        raise _fail(str(error), 2) from None


def _in_room[T](
    room: str, name: str, api_url: str | None, api_key: str | None,
    action: Callable[[RoomClient], Awaitable[T]],
) -> T:
    """Connect, run ``action``, disconnect; a room error becomes a message and exit code 1."""
    target = _target(api_url, api_key)
    token = participant_token(target, room, name, role="user")

    async def run() -> T:
        async with RoomClient(target.api_url, room, token, reconnect=False) as client:
            return await action(client)

    try:
        return asyncio.run(run())
    except RoomError as error:
        raise _fail(str(error)) from None


# ---------------------------------------------------------------- worker


@worker_app.command("join")
def join(
    room: Room,
    queue: Queue,
    agent_name: Annotated[str, typer.Option("--agent-name", help="the worker's name")] = "worker",
    require_storage: Annotated[
        bool,
        typer.Option(
            "--require-storage", "--storage",
            help="give the LLM the storage tools (--storage: the meshagent CLI's spelling)",
        ),
    ] = False,
    room_rules: Annotated[
        list[str] | None,
        typer.Option("--room-rules", help="a rules file in room storage (created if missing)"),
    ] = None,
    rule: Annotated[list[str] | None, typer.Option("--rule", "-r", help="a system rule")] = None,
    llm_script: Annotated[
        Path | None,
        typer.Option("--llm-script", exists=True, dir_okay=False,
                     help="play this localmesh LLM script in process instead of HTTP"),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="the LLM model name")] = None,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", min=1, help="exit after N messages")
    ] = None,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="exit once the queue is empty")
    ] = False,
    api_url: ApiUrl = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Join a worker to ROOM that processes the messages of QUEUE until Ctrl-C."""
    target = _target(api_url, api_key)
    adapter = None
    if llm_script is not None:
        if plugins.scripted_adapter is None:
            raise _fail("--llm-script needs the localmesh CLI (it plays scripts in process)", 2)
        adapter = plugins.scripted_adapter(llm_script, model)
    options = JoinOptions(
        room=room, agent_name=agent_name, queue=queue, require_storage=require_storage,
        room_rules=room_rules or [], rules=rule or [], llm_adapter=adapter, model=model,
        max_messages=max_messages, until_idle=until_idle,
    )
    token = participant_token(target, room, agent_name, role="agent")
    code = asyncio.run(run_join(options, target.api_url, token, lambda line: typer.echo(line)))
    raise typer.Exit(code)


@worker_app.command("spec")
def spec(
    queue: Queue,
    agent_name: Annotated[str, typer.Option("--agent-name", help="the worker's name")] = "worker",
    service_name: Annotated[
        str | None, typer.Option("--service-name", help="defaults to the agent name")
    ] = None,
    service_description: Annotated[str | None, typer.Option("--service-description")] = None,
    image: Annotated[str, typer.Option("--image", help="container image")] = DEFAULT_IMAGE,
    require_storage: Annotated[bool, typer.Option("--require-storage")] = False,
    room_rules: Annotated[list[str] | None, typer.Option("--room-rules")] = None,
    rule: Annotated[list[str] | None, typer.Option("--rule", "-r")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
) -> None:
    """Print a meshagent.yaml service spec that runs this worker in a room."""
    typer.echo(dump_spec(worker_service_spec(
        agent_name=agent_name, queue=queue, service_name=service_name,
        description=service_description, image=image, require_storage=require_storage,
        room_rules=room_rules, rules=rule, model=model,
    )), nl=False)


# ---------------------------------------------------------------- room queue


def _message_from(json_text: str | None, file: Path | None) -> dict[str, Any]:
    if (json_text is None) == (file is None):
        raise _fail("give exactly one of --json and --file", 2)
    text = json_text if json_text is not None else (
        sys.stdin.read() if str(file) == "-" else Path(file).read_text()  # type: ignore[arg-type]
    )
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise _fail(f"the message is not valid JSON: {error}", 2) from None
    if not isinstance(message, dict):
        raise _fail("a queue message must be a JSON object", 2)
    return message


@queue_app.command("send")
def queue_send(
    room: Room,
    queue: Queue,
    json_text: Annotated[str | None, typer.Option("--json", help="the message as JSON")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="a JSON file with the message ('-' = stdin)")
    ] = None,
    name: Name = "cli",
    api_url: ApiUrl = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Send one JSON message to QUEUE (creating the queue if needed)."""
    message = _message_from(json_text, file)
    _in_room(room, name, api_url, api_key, lambda r: r.queues.send(queue, message))
    typer.echo(f"sent to {queue}")


@queue_app.command("list")
def queue_list(
    room: Room, name: Name = "cli", api_url: ApiUrl = None, api_key: ApiKeyOption = None
) -> None:
    """List the room's queues and how many messages each holds."""
    for info in _in_room(room, name, api_url, api_key, lambda r: r.queues.list()):
        typer.echo(f"{info.name}\t{info.size}")


@queue_app.command("receive")
def queue_receive(
    room: Room,
    queue: Queue,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="long-poll for a message")] = False,
    name: Name = "cli",
    api_url: ApiUrl = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Take the next message from QUEUE and print it as JSON (nothing if it is empty)."""
    message = _in_room(
        room, name, api_url, api_key, lambda r: r.queues.receive(queue, create=False, wait=wait)
    )
    if message is not None:
        typer.echo(json.dumps(message))


@queue_app.command("drain")
def queue_drain(
    room: Room, queue: Queue, name: Name = "cli",
    api_url: ApiUrl = None, api_key: ApiKeyOption = None,
) -> None:
    """Remove every pending message from QUEUE."""
    _in_room(room, name, api_url, api_key, lambda r: r.queues.drain(queue))
    typer.echo(f"drained {queue}")


# ---------------------------------------------------------------- room storage


@storage_app.command("ls")
def storage_ls(
    room: Room,
    path: Annotated[str, typer.Argument(help="a folder in room storage")] = "",
    name: Name = "cli",
    api_url: ApiUrl = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List a folder: folders end with '/', files show their size."""
    for entry in _in_room(room, name, api_url, api_key, lambda r: r.storage.list(path)):
        typer.echo(f"{entry.name}/" if entry.is_folder else f"{entry.name}\t{entry.size or 0}")


@storage_app.command("cat")
def storage_cat(
    room: Room,
    path: Annotated[str, typer.Argument(help="a file in room storage")],
    name: Name = "cli",
    api_url: ApiUrl = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Write a file's bytes to stdout."""
    file = _in_room(room, name, api_url, api_key, lambda r: r.storage.download(path))
    sys.stdout.buffer.write(file.data)
    sys.stdout.flush()


@storage_app.command("put")
def storage_put(
    room: Room,
    source: Annotated[Path, typer.Argument(help="a local file ('-' = stdin)", allow_dash=True)],
    path: Annotated[str, typer.Argument(help="the destination in room storage")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing file")] = False,
    name: Name = "cli",
    api_url: ApiUrl = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Upload a local file to PATH in room storage."""
    data = sys.stdin.buffer.read() if str(source) == "-" else source.read_bytes()
    _in_room(room, name, api_url, api_key,
             lambda r: r.storage.upload(path, data, overwrite=overwrite))
    typer.echo(f"uploaded {len(data)} bytes to {path}")
