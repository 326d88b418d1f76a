"""The ``localmesh`` command: a thin shell over the emulator's and the Worker's commands.

The emulator brings ``serve``, ``env``, ``token`` and the ``service`` deploy commands; the
Worker SDK brings ``worker ...``, ``room ...`` and ``service run``. This layer stands above
both, so it is where they meet: it tells the Worker's commands how to find a local
emulator's key and how to play an LLM script in process (the harness's adapter).
"""

from __future__ import annotations

from pathlib import Path

import typer

from localmesh.emulator.cli import app as emulator_app
from localmesh.emulator.config import DEFAULT_DATA_DIR, local_api_key
from localmesh.emulator.services.cli import service_app as deploy_commands
from localmesh.fixtures.llm import ScriptedLLMAdapter
from localmesh.worker import cli as worker_cli
from localmesh.worker.join import is_claude_model
from localmesh.worker.llm import LLMAdapter
from localmesh.worker.service_cli import service_app as run_command

app = typer.Typer(
    help="localmesh: a local, offline MeshAgent room, its Worker and test harness.",
    no_args_is_help=True,
    add_completion=False,
)
app.registered_commands.extend(emulator_app.registered_commands)
app.registered_groups.extend(emulator_app.registered_groups)
app.add_typer(worker_cli.worker_app, name="worker")
app.add_typer(worker_cli.room_app, name="room")
# One `service` group: the emulator's deploy commands (create, list, logs...) and the
# Worker's `service run`.
service_app = typer.Typer(help="Deploy and inspect room services; run a service program locally.",
                          no_args_is_help=True)
service_app.registered_commands.extend(
    [*deploy_commands.registered_commands, *run_command.registered_commands])
app.add_typer(service_app, name="service")


def _scripted_adapter(script: Path, model: str | None) -> LLMAdapter:
    # The API a real worker would speak for this model, so scripts see the same requests.
    provider = "anthropic" if is_claude_model(model) else "openai"
    return ScriptedLLMAdapter(script, provider=provider, model=model)


worker_cli.plugins.local_key = lambda: local_api_key(DEFAULT_DATA_DIR)
worker_cli.plugins.scripted_adapter = _scripted_adapter


def main() -> None:
    app()
