"""The emulator's commands: ``localmesh serve``, ``env`` and ``token`` (mounted by ``localmesh/cli.py``)."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import webbrowser
from pathlib import Path
from typing import Annotated

import httpx
import typer

from localmesh.emulator.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, local_project_key
from localmesh.emulator.limits import Limits
from localmesh.emulator.queues import DEFAULT_LONG_POLL_WINDOW
from localmesh.emulator.server import RoomServer, environment
from localmesh.emulator.services.images import parse_mount_option
from localmesh.emulator.studio import login_link
from localmesh.protocol.tokens import ROLES, mint_token
from localmesh.scripted_llm import ScriptError

app = typer.Typer(
    help="localmesh: a local, offline MeshAgent room, its Worker and test harness.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = Annotated[Path, typer.Option("--data-dir", help="Where the emulator keeps its SQLite state.")]
Port = Annotated[int, typer.Option("--port", help="TCP port on the host.")]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    in_memory: Annotated[bool, typer.Option(
        "--in-memory", help="Keep nothing: state lives in memory and ends with the process.")] = False,
    long_poll_window: Annotated[float, typer.Option(
        help="Seconds a waiting queue receive holds before answering empty.")] = DEFAULT_LONG_POLL_WINDOW,
    llm_script: Annotated[Path | None, typer.Option(
        help="LLM script the /openai/v1 endpoint plays (default: the built-in demo).")] = None,
    mount_image: Annotated[list[str] | None, typer.Option(
        "--mount-image", metavar="IMAGE=DIR",
        help="Serve a code image that services mount (container.storage.images) from a local"
             " folder; IMAGE is the full reference, the repository or its last name. Repeatable.",
    )] = None,
    limit: Annotated[list[str] | None, typer.Option(
        "--limit", metavar="NAME=VALUE",
        help="Change one of the server's bounds, e.g. --limit max_connections=200"
             " (repeatable; the names are in docs/hardening.md).")] = None,
) -> None:
    """Run the room emulator in the foreground until Ctrl-C or SIGTERM (a second one forces the exit)."""
    try:
        mounts = dict(parse_mount_option(text) for text in mount_image or ())
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--mount-image") from None
    try:
        limits = Limits().with_text(limit or [])
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--limit") from None
    server = RoomServer(
        host=host, port=port, data_dir=None if in_memory else data_dir,
        long_poll_window=long_poll_window, llm_script=llm_script, log_level="info",
        mount_images=mounts, limits=limits,
    )
    try:
        asyncio.run(_serve(server, in_memory))
    except ScriptError as error:
        typer.echo(f"localmesh: {error}", err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        typer.echo(f"localmesh: {error}", err=True)
        raise typer.Exit(1) from None


async def _serve(server: RoomServer, in_memory: bool) -> None:
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
    typer.echo(f"localmesh serving on {server.url} ({where})", err=True)
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
        await server.stop()


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
    """Print a participant token (JWT) signed with the local project key."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}", param_hint="--role")
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
