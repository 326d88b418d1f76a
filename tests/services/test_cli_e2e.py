"""The Worker docs' deploy half, end to end: a real ``localmesh serve`` process, the real
``meshagent`` CLI 0.56.0 with the environment ``localmesh env`` prints (no MESHAGENT_TOKEN: the
CLI uses the API key), and services run as supervised local processes."""

from __future__ import annotations

import asyncio
import json

import pytest
from proc import alive, descendants, until_gone
from served import MESHAGENT, Served, serve, service_state, until_file, until_running

pytestmark = [pytest.mark.compat, pytest.mark.slow]

ROOM = "quickstart"
RULE = "Process queued tasks and save results to storage."
WORKER_FLAGS = ["--service-name", "worker", "--agent-name", "worker", "--queue", "tasks",
                "--require-storage", "--room-rules", "agents/worker/rules.txt", "--rule", RULE]
POEM_TASK = '{"prompt": "save a poem about ai to poem.txt"}'
RULES_HEADER = "# Add rules to this file"

# The Worker docs' meshagent.yaml for the CLI worker, verbatim: the current "join" shape...
DOCS_JOIN_YAML = """\
kind: Service # switch to service Template if installing from link for Powerboards
version: v1
metadata:
  name: worker
  description: "A worker that processes queued jobs"
  annotations:
    meshagent.service.id: "meshagent.worker"
agents:
  - name: worker
    description: "A queue based worker agent"
    annotations:
      meshagent.agent.type: "Worker"
container:
  image: us-central1-docker.pkg.dev/meshagent-public/images/cli:{SERVER_VERSION}-esgz
  command: "meshagent worker join --agent-name=worker --queue=tasks --require-storage --rule='Process queued tasks and save results to storage.'"
  environment:
    - name: MESHAGENT_TOKEN
      token:
        identity: worker
  storage:
    room:
      - path: /data             # mount room storage path for the agent to write files to
        read_only: false        # allow write access 
"""  # noqa: E501, W291

# ...and its earlier "endpoint" shape: a ServiceHost the room calls the agent into.
DOCS_ENDPOINT_YAML = """\
kind: Service # switch to service Template if installing from link for Powerboards
version: v1
metadata:
  name: worker
  description: "A worker that processes queued jobs"
  annotations:
    meshagent.service.id: "meshagent.worker"
agents:
  - name: worker
    description: "A queue based worker agent"
    annotations:
      meshagent.agent.type: "Worker"
ports:
- num: "*"                    # automatically assign an available MESHAGENT_PORT for the agent to run on 
  type: http
  endpoints:
  - path: /agent              # service path to call and run the agent on
    meshagent:
      identity: worker        # name of the agent as it shows up in the Room
container:
  image: us-central1-docker.pkg.dev/meshagent-public/images/cli:{SERVER_VERSION}-esgz
  command: "meshagent worker service --agent-name=worker --queue=tasks --require-storage --rule='Process queued tasks and save results to storage.'"
  storage:
    room:
      - path: /data             # mount room storage path for the agent to write files to
        read_only: false        # allow write access 
"""  # noqa: E501, W291

# The SDK Worker docs' meshagent.yaml: the python SDK runtime image plus a code image at /src.
DOCS_SDK_YAML = """\
kind: Service
version: v1
metadata:
  name: storage-worker
  description: "A worker agent that processes messages from a queue"
  annotations:
    meshagent.service.id: "storageworker"
agents:
  - name: storage-worker
    description: "A worker agent that processes messages from a queue"
    annotations:
      meshagent.agent.type: "Worker"
ports:
- num: "*"
  endpoints:
  - path: /worker
    meshagent:
      identity: storage-worker
container:
  image: "us-central1-docker.pkg.dev/meshagent-public/images/python-sdk:{SERVER_VERSION}-esgz"
  command: python /src/queueworker/queueworker.py
  storage:
    images:
      # Replace this image tag with your own code-only image if you build one.
      - image: "us-central1-docker.pkg.dev/meshagent-public/images/python-docs-examples:{SERVER_VERSION}"
        path: /src
        read_only: true
"""

# The docs' queueworker.py, written for the real SDK 0.56.0 (no meshagent.otel; the storage
# toolkit needs the room, so it is added when the agent starts).
QUEUEWORKER_PY = """\
import asyncio
import logging

from meshagent.agents.worker import Worker
from meshagent.api.services import ServiceHost
from meshagent.openai.tools import OpenAIResponsesAdapter
from meshagent.tools.storage import StorageToolkit, StorageToolRoomMount

logging.basicConfig(level=logging.INFO)
host = ServiceHost()


@host.path(path="/worker", identity="storage-worker")
class StorageWorker(Worker):
    def __init__(self):
        super().__init__(
            queue="storage-worker-queue",
            title="storage worker sample",
            description="this sample reads messages from a queue",
            llm_adapter=OpenAIResponsesAdapter(),
            rules=["you will receive a message with instructions, process it and do what it says"],
        )

    async def start(self, *, room):
        self._toolkits.append(StorageToolkit(mounts=[StorageToolRoomMount(path="/", room=room)]))
        await super().start(room=room)


asyncio.run(host.run())
"""


async def meshagent(served: Served, *args: str, **kwargs) -> str:
    code, output = await served.run(MESHAGENT, *args, **kwargs)
    assert code == 0, output
    assert "Traceback" not in output, output
    return output


async def send_poem_task(served: Served, room: str = ROOM, queue: str = "tasks") -> None:
    await meshagent(served, "room", "queue", "send", "--room", room, "--queue", queue, "--json", POEM_TASK)


async def test_worker_deploy_as_in_the_docs(tmp_path):
    async with serve(tmp_path / "data") as served:
        output = await meshagent(served, "worker", "deploy", "--room", ROOM, *WORKER_FLAGS)
        assert "Deployed service:" in output
        await send_poem_task(served)
        poem = await until_file(served, ROOM, "poem.txt")
        assert "circuits" in poem  # the built-in demo script's poem
        assert (await until_file(served, ROOM, "agents/worker/rules.txt")).startswith(RULES_HEADER)

        listed = await meshagent(served, "service", "list", "--room", ROOM, extra_env={"COLUMNS": "200"})
        assert "worker" in listed and "meshagent/cli:default" in listed
        in_room = await meshagent(served, "room", "service", "list", "--room", ROOM,
                                  extra_env={"COLUMNS": "300"})
        assert "worker" in in_room and "running" in in_room
        state = await service_state(served, ROOM, "worker")
        assert state["state"] == "running" and state["container_id"].startswith("local-")

        code, logs = await served.run("localmesh", "service", "logs", "worker", "--room", ROOM)
        assert code == 0 and "Worker connected" in logs, logs

        # disable stops it (the process goes), enable starts it again.
        guard = descendants(served.process.pid)
        output = await meshagent(served, "service", "disable", "worker", "--room", ROOM)
        assert "disabled" in output
        assert (await service_state(served, ROOM, "worker"))["state"] == "stopped"
        await until_gone(guard)
        await meshagent(served, "service", "enable", "worker", "--room", ROOM)
        await until_running(served, ROOM, "worker")

        # Deploying again updates the same service (the CLI upserts by name).
        output = await meshagent(served, "worker", "deploy", "--room", ROOM, *WORKER_FLAGS)
        assert "Deployed service:" in output
        listed = await meshagent(served, "service", "list", "--room", ROOM, "-o", "json")
        assert listed.count("'kind': 'Service'") == 1


async def test_worker_spec_then_service_create(tmp_path):
    async with serve(tmp_path / "data") as served:
        spec_file = served.home / "meshagent.yaml"
        # COLUMNS: the real CLI wraps its YAML at the terminal width, 80 when piped (a CLI bug).
        code, errors = await served.run(MESHAGENT, "worker", "spec", *WORKER_FLAGS,
                                        extra_env={"COLUMNS": "1000"}, stdout=spec_file)
        assert code == 0, errors
        assert "meshagent worker join" in spec_file.read_text()
        output = await meshagent(served, "service", "create", "--file", "meshagent.yaml", "--room", ROOM)
        assert "Created service:" in output
        await send_poem_task(served)
        await until_file(served, ROOM, "poem.txt")
        await until_file(served, ROOM, "agents/worker/rules.txt")


@pytest.mark.parametrize("yaml_text", [DOCS_JOIN_YAML, DOCS_ENDPOINT_YAML], ids=["join", "endpoint"])
async def test_the_docs_cli_worker_yaml_verbatim(tmp_path, yaml_text):
    async with serve(tmp_path / "data") as served:
        (served.home / "meshagent.yaml").write_text(yaml_text)
        await meshagent(served, "service", "create", "--file", "meshagent.yaml", "--room", ROOM)
        await send_poem_task(served)
        await until_file(served, ROOM, "poem.txt")
        state = await until_running(served, ROOM, "worker")
        if yaml_text is DOCS_ENDPOINT_YAML:
            assert [e["reason"] for e in state["events"]].count("Called") == 1
            assert state["status"]["ports"][0]["liveness_status"] == "not_configured"


async def test_the_docs_sdk_worker_yaml_with_a_mounted_code_image(tmp_path):
    code_dir = tmp_path / "python-docs-examples"
    (code_dir / "queueworker").mkdir(parents=True)
    (code_dir / "queueworker" / "queueworker.py").write_text(QUEUEWORKER_PY)
    async with serve(tmp_path / "data", "--mount-image", f"python-docs-examples={code_dir}") as served:
        (served.home / "meshagent.yaml").write_text(DOCS_SDK_YAML)
        await meshagent(served, "service", "create", "--file", "meshagent.yaml", "--room", ROOM)
        await send_poem_task(served, queue="storage-worker-queue")
        await until_file(served, ROOM, "poem.txt")
        code, logs = await served.run("localmesh", "service", "logs", "storage-worker", "--room", ROOM)
        assert f"python {code_dir}/queueworker/queueworker.py" in logs, logs

    # Without the mount the same spec is refused at create time, saying what to do.
    async with serve(tmp_path / "data2") as served:
        (served.home / "meshagent.yaml").write_text(DOCS_SDK_YAML)
        code, output = await served.run(MESHAGENT, "service", "create", "--file", "meshagent.yaml",
                                        "--room", ROOM)
        assert "container.storage.images[0].image" in output and "--mount-image" in output, output


async def test_a_deployed_service_runs_again_after_a_restart_and_nothing_outlives_the_server(tmp_path):
    data = tmp_path / "data"
    async with serve(data) as served:
        await meshagent(served, "worker", "deploy", "--room", ROOM, *WORKER_FLAGS)
        first = await until_running(served, ROOM, "worker")
        tree = descendants(served.process.pid)
        assert tree, "the service runs below the server"
        await served.stop()
        await until_gone(tree)

    async with serve(data) as served:
        again = await until_running(served, ROOM, "worker")
        assert again["container_id"] != first["container_id"]
        await send_poem_task(served)
        await until_file(served, ROOM, "poem.txt")
        # kill -9: the server cannot clean up; its watchdogs still stop every service.
        tree = descendants(served.process.pid)
        assert tree
        await served.kill()
        await until_gone(tree)
        assert not alive(served.process.pid)


async def test_project_services_start_in_each_room_that_becomes_active(tmp_path):
    async with serve(tmp_path / "data") as served:
        output = await meshagent(served, "worker", "deploy", *WORKER_FLAGS)  # no --room: the project
        assert "Deployed service:" in output
        # Nothing runs until a room is used; sending to the queue makes the room active.
        await send_poem_task(served, room="elsewhere")
        await until_file(served, "elsewhere", "poem.txt")
        assert (await service_state(served, "elsewhere", "worker"))["state"] == "running"
        listed = await meshagent(served, "service", "list", "-o", "json")
        assert "'name': 'worker'" in listed


BAD_SPECS = [
    ({"metadata": {"name": "worker", "nmae": "typo"}}, "nmae"),
    ({"ports": [{"num": 8078}]}, "8078"),
    ({"container": {"image": "docker.io/acme/agent:1", "command": "run"}}, "cannot be pulled offline"),
]


async def test_bad_specs_get_clear_errors(tmp_path):
    async with serve(tmp_path / "data") as served:
        for change, expected in BAD_SPECS:
            spec = {"version": "v1", "kind": "Service", "metadata": {"name": "worker"},
                    "container": {"image": "meshagent/cli:default", "command": "meshagent worker join"}}
            spec.update(change)
            (served.home / "bad.yaml").write_text(json.dumps(spec))
            # The real CLI checks a spec itself first; what it lets through, the server refuses.
            code, output = await served.run(MESHAGENT, "service", "create", "--file", "bad.yaml",
                                            "--room", ROOM)
            assert code != 0 and expected in output, output
            code, output = await served.run("localmesh", "service", "create", "--file", "bad.yaml",
                                            "--room", ROOM)
            assert code != 0 and expected in output, output
        listed = await meshagent(served, "service", "list", "--room", ROOM, "-o", "json")
        assert "'services': []" in listed


async def test_localmesh_service_commands(tmp_path):
    async with serve(tmp_path / "data") as served:
        (served.home / "meshagent.yaml").write_text(DOCS_JOIN_YAML)

        async def localmesh(*args: str) -> tuple[int, str]:
            return await served.run("localmesh", "service", *args)

        code, output = await localmesh("create", "--file", "meshagent.yaml", "--room", ROOM)
        assert code == 0 and "Created service:" in output, output
        service_id = output.split()[-1]
        code, output = await localmesh("create", "--file", "meshagent.yaml", "--room", ROOM)
        assert code == 1 and "--force" in output and "--replace" in output, output
        code, output = await localmesh("create", "--file", "meshagent.yaml", "--room", ROOM, "--replace")
        assert code == 0 and f"Updated service: {service_id}" in output, output
        code, output = await localmesh("create", "--file", "meshagent.yaml", "--room", ROOM, "--force")
        assert code == 1 and "name already in use: worker" in output, output
        code, output = await localmesh("create", "--file", "meshagent.yaml", "--global")
        assert code == 0 and "Created service:" in output, output
        code, output = await localmesh("create", "--file", "meshagent.yaml")
        assert code == 2 and "--room" in output and "--global" in output, output

        code, output = await localmesh("list", "--room", ROOM)
        assert code == 0 and service_id in output and "worker" in output, output
        code, output = await localmesh("get", "worker", "--room", ROOM)
        assert code == 0 and json.loads(output)["id"] == service_id
        (served.home / "changed.yaml").write_text(DOCS_JOIN_YAML.replace(
            'description: "A worker that processes queued jobs"', 'description: "changed"'))
        code, output = await localmesh("update", "--file", "changed.yaml", "--room", ROOM)
        assert code == 0 and service_id in output, output
        code, output = await localmesh("get", service_id, "--room", ROOM)
        assert json.loads(output)["metadata"]["description"] == "changed"

        await until_running(served, ROOM, "worker")
        code, output = await localmesh("logs", "worker", "--room", ROOM)
        assert code == 0 and "[localmesh] started: meshagent worker join" in output, output
        follower = await asyncio.create_subprocess_exec(
            "localmesh", "service", "logs", "worker", "--room", ROOM, "-f", env=served.env,
            stdout=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(30):
                assert b"[localmesh] started" in await follower.stdout.readline()
            # Restarting through the room shows up in the followed output.
            await meshagent(served, "room", "service", "restart", "--room", ROOM, "--name", "worker")
            async with asyncio.timeout(60):
                while b"exited with code" not in await follower.stdout.readline():
                    pass
        finally:
            follower.terminate()
            await follower.wait()

        code, output = await localmesh("delete", "worker", "--room", ROOM)
        assert code == 0 and "deleted" in output, output
        code, output = await localmesh("list", "--room", ROOM)
        assert service_id not in output
        code, output = await localmesh("get", "worker", "--room", ROOM)
        assert code == 1 and "no service named 'worker'" in output, output
