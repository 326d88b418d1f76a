"""``localmesh worker spec``: a MeshAgent service spec (meshagent.yaml) that runs the worker."""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from localmesh.protocol.tokens import full_api_scope

DEFAULT_IMAGE = "meshagent/cli:default"


def worker_join_command(
    *,
    agent_name: str,
    queue: str,
    require_storage: bool = False,
    room_rules: list[str] | None = None,
    rules: list[str] | None = None,
    model: str | None = None,
) -> str:
    """The ``meshagent worker join ...`` line the deployed container runs."""
    args = ["meshagent", "worker", "join", "--agent-name", agent_name, "--queue", queue]
    if require_storage:
        args.append("--require-storage")
    for path in room_rules or []:
        args += ["--room-rules", path]
    for rule in rules or []:
        args += ["--rule", rule]
    if model:
        args += ["--model", model]
    return shlex.join(args)


def worker_service_spec(
    *,
    agent_name: str,
    queue: str,
    service_name: str | None = None,
    description: str | None = None,
    image: str = DEFAULT_IMAGE,
    require_storage: bool = False,
    room_rules: list[str] | None = None,
    rules: list[str] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    name = service_name or agent_name
    metadata: dict[str, Any] = {"name": name}
    if description:
        metadata["description"] = description
    metadata["annotations"] = {"meshagent.service.id": name}
    return {
        "version": "v1",
        "kind": "Service",
        "metadata": metadata,
        "agents": [{"name": agent_name, "annotations": {"meshagent.agent.type": "Worker"}}],
        "container": {
            "image": image,
            "command": worker_join_command(
                agent_name=agent_name, queue=queue, require_storage=require_storage,
                room_rules=room_rules, rules=rules, model=model,
            ),
            # The room injects a participant token for the agent's identity at start.
            "environment": [{
                "name": "MESHAGENT_TOKEN",
                "token": {"identity": agent_name, "api": full_api_scope(), "role": "agent"},
            }],
        },
    }


def dump_spec(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=False, width=1000)
