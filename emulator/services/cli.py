"""``localmesh service create|update|list|get|delete|logs``: the real CLI's flags, over HTTP.

The commands talk to a running ``localmesh serve`` through the same accounts API the real
``meshagent service`` commands use, so both see the same services. Server and key come
from ``--api-url``/``--api-key``, else ``MESHAGENT_API_URL``/``MESHAGENT_API_KEY`` (as
``localmesh env`` prints them), else a local server on 127.0.0.1:8765 and its data dir.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
import yaml

from localmesh.protocol.tokens import ApiKey, AuthError

from ..config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, local_api_key
from .spec import SERVICE_ID_ANNOTATION

service_app = typer.Typer(help="Create, list and inspect services; read their output.",
                          no_args_is_help=True)

ApiUrl = Annotated[str | None, typer.Option("--api-url", help="server URL (default: MESHAGENT_API_URL)")]
ApiKeyOption = Annotated[str | None, typer.Option("--api-key", help="ma- key (default: MESHAGENT_API_KEY)")]
RoomOption = Annotated[str | None, typer.Option("--room", help="room name (default: MESHAGENT_ROOM)")]
FileOption = Annotated[Path, typer.Option("--file", "-f", help="a service spec (YAML or JSON)")]
GlobalOption = Annotated[bool, typer.Option("--global", help="a project service: runs in every room")]
ServiceIdOption = Annotated[str | None, typer.Option(
    "--service-id", help="set the meshagent.service.id annotation")]
ForceOption = Annotated[bool, typer.Option("--force", help="create even if the service id exists")]
ReplaceOption = Annotated[bool, typer.Option("--replace", help="replace a service with the same service id")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


class _Accounts:
    """The accounts API of one server, as the local project's key sees it."""

    def __init__(self, api_url: str | None, api_key: str | None) -> None:
        self.url = (api_url or os.environ.get("MESHAGENT_API_URL")
                    or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}").rstrip("/")
        key = api_key or os.environ.get("MESHAGENT_API_KEY") or local_api_key(DEFAULT_DATA_DIR)
        if key is None:
            raise _fail("no API key: run `eval \"$(localmesh env)\"` or pass --api-key", 2)
        try:
            self.project = ApiKey.parse(key).project_id
        except AuthError as error:
            raise _fail(f"bad API key: {error}", 2) from None
        self.http = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30.0)

    def base(self, room: str | None) -> str:
        scope = f"/rooms/{room}" if room is not None else ""
        return f"{self.url}/accounts/projects/{self.project}{scope}/services"

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TransportError as error:
            raise _fail(f"cannot reach {self.url}: {error} (is `localmesh serve` running?)") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise _ApiError(response.status_code, str(detail))
        return response.json() if response.content else None

    def find(self, room: str | None, identifier: str) -> dict[str, Any]:
        try:
            if _is_uuid(identifier):
                return self.call("GET", f"{self.base(room)}/{identifier}")
            return self.call("GET", f"{self.base(room)}/by-name/{quote(identifier, safe='')}")
        except _ApiError as error:
            raise _fail(error.detail) from None


class _ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _load_spec(path: Path, service_id: str | None) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise _fail(f"cannot read {path}: {error}") from None
    if not isinstance(spec, dict):
        raise _fail(f"{path} does not hold a service spec (a map with version, kind and metadata)")
    if service_id is not None:
        metadata = spec.setdefault("metadata", {})
        metadata.setdefault("annotations", {})[SERVICE_ID_ANNOTATION] = service_id
    return spec


def _scope(room: str | None, global_: bool) -> str | None:
    if room is not None and global_:
        raise _fail("pass either --room or --global, not both", 2)
    if room is None and not global_:
        room = os.environ.get("MESHAGENT_ROOM") or None
        if room is None:
            raise _fail("pass --room to install in a room or --global to install in every room", 2)
    return room


def _same_service_id(services: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any] | None:
    wanted = ((spec.get("metadata") or {}).get("annotations") or {}).get(SERVICE_ID_ANNOTATION)
    if not wanted:
        return None
    for service in services:
        if (service["metadata"].get("annotations") or {}).get(SERVICE_ID_ANNOTATION) == wanted:
            return service
    return None


def _write(accounts: _Accounts, room: str | None, spec: dict[str, Any], existing: str | None) -> str:
    name = (spec.get("metadata") or {}).get("name")
    try:
        if existing is None:
            created = accounts.call("POST", accounts.base(room), json=spec)
            return created["id"]
        accounts.call("PUT", f"{accounts.base(room)}/{existing}", json={**spec, "id": existing})
        return existing
    except _ApiError as error:
        if error.status == 409:
            raise _fail(f"service name already in use: {name}") from None
        raise _fail(error.detail) from None


@service_app.command("create")
def create(
    file: FileOption, room: RoomOption = None, global_: GlobalOption = False,
    service_id: ServiceIdOption = None, force: ForceOption = False, replace: ReplaceOption = False,
    api_url: ApiUrl = None, api_key: ApiKeyOption = None,
) -> None:
    """Create a service from a spec file, in a room (--room) or the project (--global)."""
    if force and replace:
        raise _fail("pass only one of --force or --replace", 2)
    scope = _scope(room, global_)
    spec = _load_spec(file, service_id)
    if spec.get("id") is not None:
        raise _fail("id cannot be set when creating a service")
    accounts = _Accounts(api_url, api_key)
    same = _same_service_id(accounts.call("GET", accounts.base(scope))["services"], spec)
    if same is not None and not force and not replace:
        wanted = spec["metadata"]["annotations"][SERVICE_ID_ANNOTATION]
        raise _fail(f"a service with service id {wanted!r} exists ({same['id']}): use --force to"
                    " create another or --replace to replace it")
    existing = same["id"] if same is not None and replace else None
    new_id = _write(accounts, scope, spec, existing)
    typer.echo(f"{'Updated' if existing else 'Created'} service: {new_id}")


@service_app.command("update")
def update(
    file: FileOption, id: Annotated[str | None, typer.Option("--id", help="the service to update")] = None,
    create: Annotated[bool, typer.Option("--create", help="create it if it does not exist")] = False,
    room: RoomOption = None, global_: GlobalOption = False, service_id: ServiceIdOption = None,
    api_url: ApiUrl = None, api_key: ApiKeyOption = None,
) -> None:
    """Replace a service's spec (found by --id, the spec's service id, or its name)."""
    scope = _scope(room, global_)
    spec = _load_spec(file, service_id)
    accounts = _Accounts(api_url, api_key)
    services = accounts.call("GET", accounts.base(scope))["services"]
    target = id or spec.get("id")
    if target is None:
        same = _same_service_id(services, spec) or next(
            (s for s in services if s["metadata"]["name"] == (spec.get("metadata") or {}).get("name")), None)
        target = same["id"] if same else None
    if target is None and not create:
        raise _fail("no such service: pass --id, or --create to create it")
    spec.pop("id", None)
    typer.echo(f"Updated service: {_write(accounts, scope, spec, target)}")


@service_app.command("list")
def list_services(
    room: RoomOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
    api_url: ApiUrl = None, api_key: ApiKeyOption = None,
) -> None:
    """List a room's services (--room), or the project's."""
    accounts = _Accounts(api_url, api_key)
    room = room or os.environ.get("MESHAGENT_ROOM") or None
    services = accounts.call("GET", accounts.base(room))["services"]
    if output == "json":
        typer.echo(json.dumps({"services": services}, indent=2))
        return
    typer.echo(f"{'ID':36}  {'NAME':24}  {'ENABLED':7}  IMAGE")
    for service in services:
        image = (service.get("container") or {}).get("image", "")
        typer.echo(f"{service['id']:36}  {service['metadata']['name']:24}  "
                   f"{str(service.get('enabled', True)):7}  {image}")


@service_app.command("get")
def get(
    service: Annotated[str, typer.Argument(help="service id or name")], room: RoomOption = None,
    api_url: ApiUrl = None, api_key: ApiKeyOption = None,
) -> None:
    """Print a service's spec as JSON."""
    accounts = _Accounts(api_url, api_key)
    found = accounts.find(room or os.environ.get("MESHAGENT_ROOM") or None, service)
    typer.echo(json.dumps(found, indent=2))


@service_app.command("delete")
def delete(
    service: Annotated[str, typer.Argument(help="service id or name")], room: RoomOption = None,
    api_url: ApiUrl = None, api_key: ApiKeyOption = None,
) -> None:
    """Delete a service; its processes stop."""
    accounts = _Accounts(api_url, api_key)
    scope = room or os.environ.get("MESHAGENT_ROOM") or None
    found = accounts.find(scope, service)
    try:
        accounts.call("DELETE", f"{accounts.base(scope)}/{found['id']}")
    except _ApiError as error:
        raise _fail(error.detail) from None
    typer.echo(f"Service {found['id']} deleted.")


@service_app.command("logs")
def logs(
    service: Annotated[str, typer.Argument(help="service name or id")], room: RoomOption = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new output")] = False,
    api_url: ApiUrl = None, api_key: ApiKeyOption = None,
) -> None:
    """Print a service's output in a room (the last 2000 lines); -f follows it."""
    room = room or os.environ.get("MESHAGENT_ROOM")
    if not room:
        raise _fail("pass --room: a service's output is kept per room", 2)
    accounts = _Accounts(api_url, api_key)
    params = {"room": room, "service": service, "follow": str(follow).lower()}
    try:
        with accounts.http.stream("GET", f"{accounts.url}/_localmesh/services/logs", params=params,
                                  timeout=None if follow else 30.0) as response:
            if response.status_code >= 400:
                response.read()
                raise _fail(response.json().get("detail", response.text))
            for line in response.iter_lines():
                typer.echo(line)
    except httpx.TransportError as error:
        raise _fail(f"cannot reach {accounts.url}: {error}") from None
    except KeyboardInterrupt:
        pass
