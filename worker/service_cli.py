"""``localmesh service run``: a local service program, called into a room (see service_run)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Annotated, TextIO

import typer

from .cli import plugins
from .config import ConfigError, resolve_target
from .service_run import RunOptions, run_service

service_app = typer.Typer(help="Run services in a room.", no_args_is_help=True)


def _echo(stream: TextIO) -> Callable[[str], None]:
    def echo(line: str) -> None:
        print(line, file=stream, flush=True)

    return echo


@service_app.command("run")
def run(
    command: Annotated[str, typer.Argument(
        help="the program: a .py file (run with localmesh's Python), a .dart file, or a command line")],
    room: Annotated[str, typer.Option("--room", envvar="MESHAGENT_ROOM", help="the room to call it into")],
    port: Annotated[int | None, typer.Option(
        "--port", "-p", min=1, max=65535,
        help="MESHAGENT_PORT for the program (default: a free port)")] = None,
    startup_timeout: Annotated[float, typer.Option(
        "--startup-timeout", min=0.1, help="seconds the program has to serve its service spec")] = 60.0,
    grace: Annotated[float, typer.Option(
        "--grace", min=0.0, help="seconds between Ctrl-C/SIGTERM and killing the program")] = 10.0,
    api_url: Annotated[str | None, typer.Option(
        "--api-url", help="server URL (default: MESHAGENT_API_URL, else a local server)")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", "--key", help="ma- API key that signs the tokens (default: MESHAGENT_API_KEY)")] = None,
    project_id: Annotated[str | None, typer.Option(
        "--project-id", help="accepted for the meshagent CLI's sake; must be the key's project")] = None,
) -> None:
    """Run COMMAND with MESHAGENT_PORT set, then call each endpoint of its service spec into
    ROOM (as `meshagent service run` does). Ctrl-C stops it; its exit code is the program's."""
    try:
        target = resolve_target(api_url, api_key, plugins.local_key)
    except ConfigError as error:
        typer.echo(f"localmesh: {error}", err=True)
        raise typer.Exit(2) from None
    if project_id is not None and project_id != target.api_key.project_id:
        typer.echo(f"localmesh: --project-id {project_id} is not the API key's project "
                   f"({target.api_key.project_id})", err=True)
        raise typer.Exit(2)
    options = RunOptions(command=command, room=room, port=port, startup_timeout=startup_timeout,
                         grace=grace)
    code = asyncio.run(run_service(options, target, out=_echo(sys.stdout), err=_echo(sys.stderr)))
    raise typer.Exit(code)
