"""The accounts services API, driven by the real SDK's accounts client (``meshagent.api.Meshagent``)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from meshagent.api import RoomException
from meshagent.api.client import ConflictError, Meshagent, NotFoundError, ValidationErrorResponse
from meshagent.api.room_server_client import ServicesClient
from meshagent.api.specs.service import ServiceSpec

from localmesh.emulator import RoomServer

pytestmark = pytest.mark.compat

PROMPT = 10.0
IDLE = "import time\nwhile True: time.sleep(3600)"


def idle_spec(name: str = "idle") -> ServiceSpec:
    # A CLI-image service whose command just waits: the supervisor runs it for real.
    return ServiceSpec.model_validate({
        "version": "v1", "kind": "Service", "metadata": {"name": name},
        "container": {"image": "meshagent/cli:default", "command": f"python -c '{IDLE}'"},
    })


@pytest.fixture
async def accounts(localmesh_server: RoomServer):
    client = Meshagent(base_url=localmesh_server.url, token=localmesh_server.api_key)
    yield client
    await client.close()


async def until(condition, timeout: float = PROMPT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_room_service_crud(localmesh_server, accounts):
    project = localmesh_server.project_id
    service_id = await accounts.create_room_service(project_id=project, room_name="r", service=idle_spec())
    listed = await accounts.list_room_services(project_id=project, room_name="r")
    assert [(s.id, s.metadata.name) for s in listed] == [(service_id, "idle")]
    got = await accounts.get_room_service(project_id=project, room_name="r", service_id=service_id)
    assert got.id == service_id
    by_name = await accounts.get_room_service_by_name(project_id=project, room_name="r", service_name="idle")
    assert by_name.id == service_id
    assert await accounts.list_room_services(project_id=project, room_name="other") == []

    supervisor = localmesh_server.services.supervisor
    await until(lambda: supervisor.state_of("r", service_id)["state"] == "running")

    changed = idle_spec()
    changed.id = service_id
    changed.metadata.description = "changed"
    first_pid = supervisor.runner("r", service_id).pid
    await accounts.update_room_service(
        project_id=project, room_name="r", service_id=service_id, service=changed)
    got = await accounts.get_room_service(project_id=project, room_name="r", service_id=service_id)
    assert got.metadata.description == "changed"
    await until(lambda: (supervisor.runner("r", service_id) or None) is not None
                and supervisor.runner("r", service_id).pid not in (None, first_pid))

    await accounts.delete_room_service(project_id=project, room_name="r", service_id=service_id)
    assert await accounts.list_room_services(project_id=project, room_name="r") == []
    assert supervisor.runner("r", service_id) is None
    with pytest.raises(NotFoundError):
        await accounts.get_room_service(project_id=project, room_name="r", service_id=service_id)


async def test_project_service_crud_answers_whole_specs(localmesh_server, accounts):
    project = localmesh_server.project_id
    created = await accounts.create_service(project_id=project, service=idle_spec("everywhere"))
    assert created.id and created.metadata.name == "everywhere"
    assert [s.id for s in await accounts.list_services(project_id=project)] == [created.id]
    found = await accounts.get_service_by_name(project_id=project, service_name="everywhere")
    assert found.id == created.id
    created.enabled = False
    updated = await accounts.update_service(project_id=project, service_id=created.id, service=created)
    assert updated.enabled is False
    await accounts.delete_service(project_id=project, service_id=created.id)
    assert await accounts.list_services(project_id=project) == []


async def test_duplicate_name_is_409_per_scope(localmesh_server, accounts):
    project = localmesh_server.project_id
    await accounts.create_room_service(project_id=project, room_name="r", service=idle_spec())
    with pytest.raises(ConflictError, match="already exists in room 'r'"):
        await accounts.create_room_service(project_id=project, room_name="r", service=idle_spec())
    # Another room, or the project, may use the name.
    await accounts.create_room_service(project_id=project, room_name="r2", service=idle_spec())
    await accounts.create_service(project_id=project, service=idle_spec())


async def test_unrunnable_image_is_refused_at_create(localmesh_server, accounts):
    spec = idle_spec()
    spec.container.image = "docker.io/library/nginx:latest"
    with pytest.raises(ValidationErrorResponse, match="container.image: .*cannot be pulled offline"):
        await accounts.create_room_service(
            project_id=localmesh_server.project_id, room_name="r", service=spec)
    assert await accounts.list_room_services(project_id=localmesh_server.project_id, room_name="r") == []


@pytest.mark.parametrize("change, message", [
    ({"metadata": {"name": "x", "colour": "red"}}, "metadata.colour: unknown field"),
    ({"ports": [{"num": 8078}]}, "ports[0].num: port 8078 is reserved"),
    ({"id": "mine"}, "id: assigned by the server"),
])
async def test_bad_bodies_get_400_naming_the_field(localmesh_server, change, message):
    body = {**idle_spec().model_dump(mode="json", exclude_none=True), **change}
    url = f"{localmesh_server.url}/accounts/projects/{localmesh_server.project_id}/rooms/r/services"
    async with httpx.AsyncClient() as http:
        headers = {"Authorization": f"Bearer {localmesh_server.api_key}"}
        response = await http.post(url, json=body, headers=headers)
    assert response.status_code == 400
    assert message in response.json()["detail"]


async def test_a_template_body_is_refused_with_what_to_do(localmesh_server):
    url = f"{localmesh_server.url}/accounts/projects/{localmesh_server.project_id}/services"
    async with httpx.AsyncClient() as http:
        response = await http.post(url, json={"template": "kind: ServiceTemplate", "values": {}},
                                   headers={"Authorization": f"Bearer {localmesh_server.api_key}"})
    assert response.status_code == 400 and "render-template" in response.json()["detail"]


async def test_auth_and_project_are_checked(localmesh_server):
    project = localmesh_server.project_id
    async with httpx.AsyncClient(base_url=localmesh_server.url) as http:
        assert (await http.get(f"/accounts/projects/{project}/services")).status_code == 401
        token = localmesh_server.mint_token(room="r", name="a")
        response = await http.get(f"/accounts/projects/{project}/services",
                                  headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        response = await http.get("/accounts/projects/not-mine/services",
                                  headers={"Authorization": f"Bearer {localmesh_server.api_key}"})
        assert response.status_code == 404 and "local project" in response.json()["detail"]


async def test_services_survive_a_restart_and_run_again(tmp_path):
    async with RoomServer(data_dir=tmp_path) as server:
        client = Meshagent(base_url=server.url, token=server.api_key)
        service_id = await client.create_room_service(
            project_id=server.project_id, room_name="r", service=idle_spec())
        await client.close()
        await until(lambda: server.services.supervisor.state_of("r", service_id)["state"] == "running")
        first = server.services.supervisor.runner("r", service_id).pid
    async with RoomServer(data_dir=tmp_path) as server:
        supervisor = server.services.supervisor
        await until(lambda: supervisor.state_of("r", service_id)["state"] == "running")
        assert supervisor.runner("r", service_id).pid != first


async def test_spec_files_are_created_in_room_storage_once(localmesh_server, accounts, meshagent_room):
    spec = ServiceSpec.model_validate({
        "version": "v1", "kind": "Service", "metadata": {"name": "listing"},
        "files": [{"path": "agents/notes.txt", "text": "from the spec"}],
        "external": {"url": "https://example.invalid/agent"},
    })
    async with meshagent_room("r") as room:
        await room.storage.upload(path="kept.txt", data=b"mine")
        spec.files.append(type(spec.files[0])(path="kept.txt", text="not this"))
        project = localmesh_server.project_id
        await accounts.create_room_service(project_id=project, room_name="r", service=spec)
        async with asyncio.timeout(PROMPT):
            while not await room.storage.exists(path="agents/notes.txt"):
                await asyncio.sleep(0.05)
        assert (await room.storage.download(path="agents/notes.txt")).data == b"from the spec"
        assert (await room.storage.download(path="kept.txt")).data == b"mine"
        # No container: nothing runs, and the room says why.
        result = await ServicesClient(room=room).list()
        (listed,) = result.services
        assert result.service_states[listed.id].state == "external"


async def test_services_toolkit_lists_room_and_project_services_and_restarts(
        localmesh_server, accounts, meshagent_room):
    project = localmesh_server.project_id
    room_id = await accounts.create_room_service(project_id=project, room_name="r", service=idle_spec("mine"))
    everywhere = await accounts.create_service(project_id=project, service=idle_spec("everywhere"))
    supervisor = localmesh_server.services.supervisor
    async with meshagent_room("r") as room:  # the room becomes active: the project service starts
        services = ServicesClient(room=room)
        await until(lambda: supervisor.state_of("r", everywhere.id)["state"] == "running")
        await until(lambda: supervisor.state_of("r", room_id)["state"] == "running")
        result = await services.list()
        assert [s.metadata.name for s in result.services] == ["mine", "everywhere"]
        assert {sid: s.state for sid, s in result.service_states.items()} == {
            room_id: "running", everywhere.id: "running"}
        first = supervisor.runner("r", room_id).pid
        await services.restart(service_id=room_id)
        await until(lambda: supervisor.runner("r", room_id).pid not in (None, first))
        assert (await services.list()).service_states[room_id].restart_count == 1
        with pytest.raises(RoomException, match="does not exist in room 'r'"):
            await services.restart(service_id="nope")
    # Another room never used runs nothing.
    assert supervisor.runner("other", everywhere.id) is None
