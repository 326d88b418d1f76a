"""The emulator's commands: ``localmesh serve``, ``env``, ``token``, ``llm record`` and ``fault
add|list|clear``, among others (mounted by ``localmesh/cli.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import webbrowser
from pathlib import Path
from typing import Annotated

import httpx
import typer

from localmesh.emulator.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    environment,
    local_api_key,
    local_project_key,
)
from localmesh.emulator.event_loop import (
    LOOP_ENV,
    LoopChoice,
    LoopFactory,
    LoopUnavailable,
    loop_factory,
)
from localmesh.emulator.faults import ADMIN_PATH as FAULTS_PATH
from localmesh.emulator.faults import KINDS
from localmesh.emulator.limits import RENAMED, Limits
from localmesh.emulator.queues import DEFAULT_LONG_POLL_WINDOW
from localmesh.emulator.server import RoomServer
from localmesh.emulator.services.images import parse_mount_option
from localmesh.emulator.snapshot import Snapshot, SnapshotError
from localmesh.emulator.studio import login_link
from localmesh.emulator.timeline import DEFAULT_TIMELINE_SIZE
from localmesh.protocol.loop_turn import loop_name
from localmesh.protocol.tokens import ROLES, ApiKey, AuthError, mint_token
from localmesh.scripted_llm import ScriptError

FOLLOW_WAIT = 10.0  # seconds each `timeline -f` request waits for news

app = typer.Typer(
    help="localmesh: a local, offline MeshAgent room, its Worker and test harness.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = Annotated[Path, typer.Option("--data-dir", help="Where the emulator keeps its SQLite state.")]
Port = Annotated[int, typer.Option("--port", help="TCP port on the host.")]
LongPollWindow = Annotated[float, typer.Option(
    help="Seconds a waiting queue receive holds before answering empty.")]
LlmScript = Annotated[Path | None, typer.Option(
    help="LLM script the /openai/v1 endpoint plays (default: the built-in demo).")]
TimelineSize = Annotated[int, typer.Option(
    min=1, help="Timeline events kept per room (`localmesh timeline`).")]
ImportDir = Annotated[Path | None, typer.Option(
    "--import", help="Start from an export directory (`localmesh export`).")]
ExportOnExit = Annotated[Path | None, typer.Option(
    "--export-on-exit", help="Export the rooms to this directory when stopping.")]
EventLoop = Annotated[LoopChoice, typer.Option(
    "--loop", envvar=LOOP_ENV, case_sensitive=False,
    help="Event loop: uvloop (less CPU per operation), asyncio's own, or auto (uvloop when"
         " installed).")]
ApiUrl = Annotated[str | None, typer.Option(
    "--api-url", help="The emulator (default: MESHAGENT_API_URL, else the local one).")]
ApiKeyOption = Annotated[str | None, typer.Option(
    "--api-key", help="Its API key (default: MESHAGENT_API_KEY, else the local data dir's).")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"localmesh: {message}", err=True)
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    in_memory: Annotated[bool, typer.Option(
        "--in-memory", help="Keep nothing: state lives in memory and ends with the process.")] = False,
    long_poll_window: LongPollWindow = DEFAULT_LONG_POLL_WINDOW,
    llm_script: LlmScript = None,
    mount_image: Annotated[list[str] | None, typer.Option(
        "--mount-image", metavar="IMAGE=DIR",
        help="Serve a code image that services mount (container.storage.images) from a local"
             " folder; IMAGE is the full reference, the repository or its last name. Repeatable.",
    )] = None,
    limit: Annotated[list[str] | None, typer.Option(
        "--limit", metavar="NAME=VALUE",
        help="Change one of the server's bounds, e.g. --limit max_connections=200"
             " (repeatable; the names are in docs/hardening.md).")] = None,
    max_file_mb: Annotated[int | None, typer.Option(
        min=1, help="Deprecated: the same as --limit max_file_bytes=N*1048576 (the largest"
                    " file an upload may store; default 1 GiB).")] = None,
    timeline_size: TimelineSize = DEFAULT_TIMELINE_SIZE,
    import_from: ImportDir = None,
    export_on_exit: ExportOnExit = None,
    loop: EventLoop = LoopChoice.auto,
) -> None:
    """Run the room emulator in the foreground until Ctrl-C or SIGTERM (a second one forces the exit)."""
    factory = _loop_factory(loop)
    try:
        mounts = dict(parse_mount_option(text) for text in mount_image or ())
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--mount-image") from None
    try:
        limits = Limits().with_text(limit or [])
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--limit") from None
    if max_file_mb is not None:
        # One limit, one name: --max-file-mb is kept as a shorthand of the --limit that sets it.
        if any(RENAMED.get(n, n) == "max_file_bytes"
               for n in (text.partition("=")[0].strip().replace("-", "_") for text in limit or [])):
            raise typer.BadParameter(
                "give the file limit once: --limit max_file_bytes=N (--max-file-mb is its old form)",
                param_hint="--max-file-mb")
        typer.echo("localmesh serve: --max-file-mb is deprecated; use --limit"
                   f" max_file_bytes={max_file_mb * 1024 * 1024}", err=True)
        limits = limits.replace(max_file_bytes=max_file_mb * 1024 * 1024)
    server = RoomServer(
        host=host, port=port, data_dir=None if in_memory else data_dir,
        long_poll_window=long_poll_window, llm_script=llm_script, log_level="info",
        mount_images=mounts, limits=limits,
        timeline_size=timeline_size, import_from=import_from,
    )
    try:
        asyncio.run(_serve(server, in_memory, export_on_exit), loop_factory=factory)
    except (ScriptError, SnapshotError) as error:
        raise _fail(str(error), 2) from None
    except OSError as error:
        raise _fail(str(error)) from None
    # Stopped: a further Ctrl-C or SIGTERM (a second one sent while a quick shutdown was
    # already done) has nothing left to do and must not turn a clean exit into a kill.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


async def _serve(server: RoomServer, in_memory: bool, export_on_exit: Path | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()  # the first: a clean shutdown, bounded by the shutdown grace
            return
        typer.echo("localmesh: second signal, cutting every connection now", err=True)
        server.force_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await server.start()
    where = "in memory" if in_memory else f"data in {server.settings.data_dir}"
    typer.echo(f"localmesh serving on {server.url} ({where}; event loop: {loop_name(loop)})", err=True)
    typer.echo(f"Studio: {server.url}/studio", err=True)
    if in_memory:
        # No data dir for `localmesh studio` to read the key from: print a login link now.
        typer.echo(f"  one-time login link: {login_link(server.url, server.state.api_key)}", err=True)
        typer.echo("# point the MeshAgent SDK and CLI at it:", err=True)
        for name, value in server.env().items():
            typer.echo(f"export {name}={shlex.quote(value)}", err=True)
    else:
        typer.echo("  `localmesh studio` opens it logged in (or log in with the API key)", err=True)
    try:
        await stop.wait()
    finally:
        typer.echo("localmesh: shutting down", err=True)
        try:
            if export_on_exit is not None:
                await server.export(export_on_exit)
                typer.echo(f"localmesh: exported the rooms to {export_on_exit}", err=True)
        finally:
            await server.stop()


@app.command("exec", context_settings={"ignore_unknown_options": True})
def exec_(
    command: Annotated[list[str], typer.Argument(
        help="The command to run, after --: localmesh exec -- pytest -q", show_default=False)],
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Keep the state in this data dir (default: in memory).")] = None,
    port: Annotated[int, typer.Option("--port", help="TCP port (default: any free one).")] = 0,
    long_poll_window: LongPollWindow = DEFAULT_LONG_POLL_WINDOW,
    llm_script: LlmScript = None,
    import_from: ImportDir = None,
    export_on_exit: ExportOnExit = None,
    loop: EventLoop = LoopChoice.auto,
) -> None:
    """Run COMMAND against a throwaway emulator, exit with COMMAND's status.

    The server starts first (in memory unless --data-dir), COMMAND gets its environment
    (MESHAGENT_API_URL and the rest of `localmesh env`), and the server stops when it ends."""
    from localmesh.emulator.exec import CommandNotFound, exec_with_server

    factory = _loop_factory(loop)
    server = RoomServer(
        port=port, data_dir=data_dir, long_poll_window=long_poll_window, llm_script=llm_script,
        import_from=import_from,
    )
    try:
        status = asyncio.run(exec_with_server(server, command, export_on_exit=export_on_exit,
                                              started=_announce_exec), loop_factory=factory)
    except CommandNotFound as error:
        raise _fail(str(error), 127) from None
    except (ScriptError, SnapshotError) as error:
        raise _fail(str(error), 2) from None
    except OSError as error:
        raise _fail(str(error)) from None
    raise typer.Exit(status)


def _loop_factory(choice: LoopChoice) -> LoopFactory | None:
    try:
        return loop_factory(choice)
    except LoopUnavailable as error:
        raise typer.BadParameter(str(error), param_hint="--loop") from None


def _announce_exec(server: RoomServer) -> None:
    loop = loop_name(asyncio.get_running_loop())
    typer.echo(f"localmesh exec: server on {server.url} (event loop: {loop})", err=True)


def _admin_client(api_url: str | None, api_key: str | None, data_dir: Path):
    from localmesh.emulator.admin_client import AdminClient

    url = api_url or os.environ.get("MESHAGENT_API_URL") or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    key = api_key or os.environ.get("MESHAGENT_API_KEY") or local_api_key(data_dir)
    if not key:
        raise _fail("no API key: set MESHAGENT_API_KEY (see `localmesh env`), pass --api-key, "
                    "or run this where `localmesh serve` keeps its data dir", 2)
    return AdminClient(url, key)


@app.command()
def timeline(
    room: Annotated[str | None, typer.Option(help="One room (default: every room).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    kind: Annotated[str | None, typer.Option(
        help="Only this kind (a prefix works: queue, storage, call).")] = None,
    participant: Annotated[str | None, typer.Option(help="Only this participant's events.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many past events.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print the rooms' timeline of a running emulator, one line per event."""
    from localmesh.emulator.admin_client import AdminError

    client = _admin_client(api_url, api_key, data_dir)
    since, options = 0, {"kind": kind, "participant": participant}
    try:
        page = client.timeline(room, limit=limit, **options)
        while True:
            for event in page["events"]:
                typer.echo(json.dumps(event) if as_json else event["line"])
            since = page["last"]
            if not follow:
                return
            page = client.timeline(room, since=since, wait=FOLLOW_WAIT, **options)
    except AdminError as error:
        raise _fail(str(error)) from None
    except KeyboardInterrupt:
        return


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(
        help="Where to write the export (a new or empty directory, or an older export).")],
    api_url: ApiUrl = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Export a running emulator's rooms (queues, messages, files) and keys to DIRECTORY."""
    from localmesh.emulator.admin_client import AdminError

    client = _admin_client(api_url, api_key, data_dir)
    try:
        snapshot = Snapshot.from_tar(client.export(), f"the export from {client.url}")
        snapshot.write(directory)
    except (AdminError, SnapshotError) as error:
        raise _fail(str(error)) from None
    rooms = snapshot.rooms
    typer.echo(f"exported {len(rooms)} room(s) to {directory}", err=True)


@app.command()
def env(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    port: Port = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Host the emulator listens on.")] = DEFAULT_HOST,
) -> None:
    """Print `export` lines that point the real MeshAgent SDK and CLI at the emulator.

    Use: eval "$(localmesh env)". No MESHAGENT_TOKEN: the real CLI mints tokens from
    the API key, one per agent name.
    """
    key = asyncio.run(local_project_key(data_dir))
    for name, value in environment(f"http://{host}:{port}", key.text, key.project_id).items():
        typer.echo(f"export {name}={shlex.quote(value)}")


@app.command()
def studio(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    port: Port = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Host the emulator listens on.")] = DEFAULT_HOST,
    no_open: Annotated[bool, typer.Option(
        "--no-open", help="Print the one-time login link instead of opening a browser.")] = False,
) -> None:
    """Open the Studio of a running `localmesh serve` in the browser, logged in.

    The link logs one browser in, once, within ten minutes; it is signed with the project key
    kept in the data dir, so use the same --data-dir (and --port) as the server.
    """
    if not (data_dir / "localmesh.db").exists():
        typer.echo(f"localmesh: no emulator data in {data_dir}; start `localmesh serve` first "
                   "(or pass the --data-dir it uses)", err=True)
        raise typer.Exit(1)
    base = f"http://{host}:{port}"
    try:
        httpx.get(f"{base}/healthz", timeout=3).raise_for_status()
    except httpx.HTTPError:
        typer.echo(f"localmesh: no emulator answers on {base}; start `localmesh serve` first "
                   "(or pass the --port it uses)", err=True)
        raise typer.Exit(1) from None
    link = login_link(base, asyncio.run(local_project_key(data_dir)))
    if no_open:
        typer.echo(link)
        return
    opened = webbrowser.open(link)
    typer.echo(f"{'Opened' if opened else 'Open'} the Studio: {link}")


@app.command()
def token(
    room: Annotated[str, typer.Option(help="Room the token joins.")],
    name: Annotated[str, typer.Option(help="Participant name.")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "agent",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a participant token (JWT) signed with the local project key, or with the key in
    MESHAGENT_API_KEY when it is set (as `localmesh env` and `localmesh exec` set it) and no
    other --data-dir is given."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}", param_hint="--role")
    from_env = os.environ.get("MESHAGENT_API_KEY")
    if from_env and data_dir == DEFAULT_DATA_DIR:
        try:
            key = ApiKey.parse(from_env)
        except AuthError:
            raise typer.BadParameter("MESHAGENT_API_KEY is not a localmesh API key (ma-...)",
                                     param_hint="MESHAGENT_API_KEY") from None
    else:
        key = asyncio.run(local_project_key(data_dir))
    typer.echo(mint_token(key, room=room, name=name, role=role))


llm_app = typer.Typer(help="The scripted LLM: record a real conversation into a script.",
                      no_args_is_help=True)
app.add_typer(llm_app, name="llm")


@llm_app.command("record")
def llm_record(
    upstream: Annotated[str, typer.Option(
        help="The real OpenAI-compatible base URL to record, e.g. https://api.openai.com/v1.")],
    out: Annotated[Path, typer.Option(help="The script file to write (rewritten after each exchange).")],
    port: Annotated[int, typer.Option(help="Port of the recording proxy on 127.0.0.1.")] = 8766,
    api_key_env: Annotated[str | None, typer.Option(
        help="Take the upstream key from this environment variable instead of the client's "
             "Authorization header. The key is never written to the script.")] = None,
) -> None:
    """Forward OpenAI Responses requests to UPSTREAM and write each exchange into a script
    that `localmesh serve --llm-script OUT` replays offline. Point your client's
    OPENAI_BASE_URL at the proxy's /v1 (request mode; websocket mode is not recorded)."""
    from localmesh.emulator.llm.record_proxy import RecordingProxy

    api_key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        raise typer.BadParameter(f"${api_key_env} is not set", param_hint="--api-key-env")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with RecordingProxy(upstream, out, api_key=api_key, port=port) as proxy:
            typer.echo(f"recording {upstream} into {out}", err=True)
            typer.echo(f"export OPENAI_BASE_URL={proxy.url}/v1", err=True)
            await stop.wait()
        typer.echo(f"localmesh: {len(proxy.recording.exchanges)} exchange(s) in {out}", err=True)

    try:
        asyncio.run(run())
    except OSError as error:
        typer.echo(f"localmesh: {error}", err=True)
        raise typer.Exit(1) from None


# ---------------------------------------------------------------- faults

fault_app = typer.Typer(
    help="Faults in a running emulator: add, list and clear them (the admin API, with the API key).",
    no_args_is_help=True,
)
app.add_typer(fault_app, name="fault")

ServerUrl = Annotated[str | None, typer.Option(
    "--url", help="The emulator's URL (default: $MESHAGENT_API_URL, else the local serve's).")]
ApiKeyOption = Annotated[str | None, typer.Option(
    "--api-key", help="The project API key (default: $MESHAGENT_API_KEY, else the local one).")]


def _admin(url: str | None, api_key: str | None, data_dir: Path) -> tuple[str, dict[str, str]]:
    base = (url or os.environ.get("MESHAGENT_API_URL") or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}")
    key = api_key or os.environ.get("MESHAGENT_API_KEY") or local_api_key(data_dir)
    if key is None:
        raise typer.BadParameter(
            f"no emulator data in {data_dir}: give --api-key (or set MESHAGENT_API_KEY)",
            param_hint="--api-key")
    return f"{base.rstrip('/')}{FAULTS_PATH}", {"authorization": f"Bearer {key}"}


def _call(method: str, url: str, headers: dict[str, str], body: dict | None = None) -> httpx.Response:
    try:
        response = httpx.request(method, url, headers=headers, json=body, timeout=10.0)
    except httpx.HTTPError as error:
        typer.echo(f"localmesh: cannot reach the emulator at {url}: {error}", err=True)
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        try:
            reason = response.json().get("error") or response.text
        except ValueError:
            reason = response.text
        typer.echo(f"localmesh: {response.status_code}: {reason}", err=True)
        raise typer.Exit(1)
    return response


@fault_app.command("add")
def fault_add(
    kind: Annotated[str, typer.Argument(help=f"One of {', '.join(k.replace('_', '-') for k in KINDS)}.")],
    room: Annotated[str | None, typer.Option(help="Only in this room.")] = None,
    participant: Annotated[str | None, typer.Option(help="Only for this participant name.")] = None,
    toolkit: Annotated[str | None, typer.Option(help="Calls of this toolkit (call kinds).")] = None,
    tool: Annotated[str | None, typer.Option(help="Calls of this tool (call kinds).")] = None,
    path: Annotated[str | None, typer.Option(help="Writes of paths matching this glob (fail-write).")] = None,
    nth: Annotated[int, typer.Option(help="Fire from the nth matching event on.")] = 1,
    times: Annotated[int | None, typer.Option(
        help="How many times to fire (default 1; refuse with --seconds: every attempt).")] = None,
    always: Annotated[bool, typer.Option("--always", help="Fire every time, until cleared.")] = False,
    code: Annotated[int | None, typer.Option(help="Error code (error, fail-write).")] = None,
    message: Annotated[str | None, typer.Option(help="Error message (error, fail-write).")] = None,
    seconds: Annotated[float | None, typer.Option(
        help="delay: how long; refuse: for how long from now.")] = None,
    after_frames: Annotated[int | None, typer.Option(
        help="drop-reply / drop-connection: frames written first.")] = None,
    status: Annotated[int | None, typer.Option(help="refuse: HTTP status (default 503).")] = None,
    reason: Annotated[str | None, typer.Option(help="refuse: the reason given.")] = None,
    after_bytes: Annotated[int | None, typer.Option(help="fail-write: bytes that arrive first.")] = None,
    url: ServerUrl = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Arm a fault in a running emulator; prints it with its id."""
    body: dict[str, object] = {"kind": kind, "nth": nth}
    options = {
        "room": room, "participant": participant, "toolkit": toolkit, "tool": tool, "path": path,
        "code": code, "message": message, "seconds": seconds, "after_frames": after_frames,
        "status": status, "reason": reason, "after_bytes": after_bytes,
    }
    body.update({key: value for key, value in options.items() if value is not None})
    if always and times is not None:
        raise typer.BadParameter("give --times or --always, not both", param_hint="--always")
    if always:
        body["times"] = None
    elif times is not None:
        body["times"] = times
    endpoint, headers = _admin(url, api_key, data_dir)
    typer.echo(_call("POST", endpoint, headers, body).json()["description"])


@fault_app.command("list")
def fault_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the faults as JSON.")] = False,
    url: ServerUrl = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Every fault of a running emulator, with how often each matched and fired."""
    endpoint, headers = _admin(url, api_key, data_dir)
    faults = _call("GET", endpoint, headers).json()["faults"]
    if as_json:
        typer.echo(json.dumps(faults, indent=2))
        return
    for fault in faults:
        typer.echo(fault["description"])
    if not faults:
        typer.echo("no faults", err=True)


@fault_app.command("clear")
def fault_clear(
    ident: Annotated[int | None, typer.Argument(help="Remove only this fault (default: all).")] = None,
    url: ServerUrl = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Remove one fault, or every fault, of a running emulator."""
    endpoint, headers = _admin(url, api_key, data_dir)
    _call("DELETE", endpoint if ident is None else f"{endpoint}/{ident}", headers)
    typer.echo("cleared every fault" if ident is None else f"removed fault #{ident}", err=True)
