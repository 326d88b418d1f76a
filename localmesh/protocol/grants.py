"""The ``api`` grant of a participant token, parsed as the MeshAgent SDK's model parses it.

Every section and field has the type the SDK 0.56 model gives it (pydantic, lax mode:
``"false"`` is false, ``"jobs"`` is not a list), so a token means here what it means to
the SDK. Where the SDK would take a grant that cannot mean anything sensible, localmesh is
stricter and refuses the token at the upgrade with the reason (docs/hardening.md lists
these): an unknown key anywhere (the SDK ignores it, so a typo such as ``sends`` would
silently allow every queue), and legacy storage paths the SDK accepts but then denies
every storage call for (``./secret``). Nothing here ever allows what the SDK's model denies;
``tests/emulator/test_grants_model.py`` checks that against the SDK itself.

Written for localmesh from the SDK's documented shapes; no SDK code is imported here.
"""

from __future__ import annotations

from typing import Any, List, Literal  # noqa: UP035 (List: some sections have a field named list)

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

FileAction = Literal["list", "read", "write", "delete", "presign"]
READ_ACTIONS: tuple[FileAction, ...] = ("list", "read")
WRITE_ACTIONS: tuple[FileAction, ...] = ("list", "read", "write", "delete")
RESERVED_NAME = ".meshagent-directory"
RESERVED_PREFIX = ".meshagent-upload-"


class GrantError(ValueError):
    """A grant localmesh refuses; the message names the field and the problem."""


class _Section(BaseModel):
    # Stricter than the SDK (which ignores unknown keys): an unknown key is refused.
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_file_path(value: str) -> str:
    """A canonical relative storage path ("" is the root), as the SDK's files policy wants."""
    if value.startswith("/") or any(c == "\\" or ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise ValueError("Files paths must be canonical relative paths")
    if value and any(
        part in ("", ".", "..", RESERVED_NAME) or part.startswith(RESERVED_PREFIX)
        for part in value.split("/")
    ):
        raise ValueError("Files paths must be canonical relative paths")
    return value


def _descends(parent: str, path: str) -> bool:
    return not parent or path.startswith(parent + "/")


# ---------------------------------------------------------------- sections localmesh checks


class QueuesGrant(_Section):
    send: List[str] | None = None  # noqa: UP006
    receive: List[str] | None = None  # noqa: UP006
    list: bool = True

    def can_send(self, queue: str) -> bool:
        return self.send is None or queue in self.send

    def can_receive(self, queue: str) -> bool:
        return self.receive is None or queue in self.receive


class FilePathRule(_Section):
    path: str
    recursive: bool
    actions: list[FileAction]
    excluded_paths: list[str] = Field(default_factory=list, max_length=1000)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_file_path(value)

    @field_validator("excluded_paths")
    @classmethod
    def _excluded(cls, values: list[str]) -> list[str]:
        return [check_file_path(value) for value in values]

    def allows(self, action: str, path: str, subtree: bool = False) -> bool:
        if action not in self.actions or (subtree and not self.recursive):
            return False
        if path != self.path and not (self.recursive and _descends(self.path, path)):
            return False
        return not any(
            path == excluded or _descends(excluded, path) or (subtree and _descends(path, excluded))
            for excluded in self.excluded_paths
        )


class FilesPolicy(_Section):
    paths: list[FilePathRule] = Field(default_factory=list, max_length=1000)


class StoragePathGrant(_Section):
    path: str
    read_only: bool = False

    @field_validator("path")
    @classmethod
    def _usable(cls, value: str) -> str:
        # The SDK parses any string here, then denies every storage call when one of the
        # rules is not a canonical path; refusing the token says so at once instead.
        try:
            return check_file_path(value.strip("/"))
        except ValueError:
            raise ValueError(
                f"storage path {value!r} is not a canonical relative path (the SDK's model"
                " would deny every storage call for this grant)"
            ) from None


class StorageGrant(_Section):
    paths: list[StoragePathGrant] | None = None
    files: FilesPolicy | None = None

    def rules(self) -> list[FilePathRule]:
        """The files policy in force: ``files`` when given, else the legacy ``paths``."""
        if self.files is not None:
            return self.files.paths
        if self.paths is None:
            return [FilePathRule(path="", recursive=True, actions=list(WRITE_ACTIONS))]
        # Legacy prefixes: an earlier rule wins, so each rule excludes the ones before it,
        # and none of them grants presign.
        rules: list[FilePathRule] = []
        for grant in self.paths:
            path = grant.path.strip("/")
            rules.append(FilePathRule(
                path=path, recursive=True,
                actions=list(READ_ACTIONS if grant.read_only else WRITE_ACTIONS),
                excluded_paths=[rule.path for rule in rules],
            ))
        return rules

    @property
    def names_presign(self) -> bool:
        """A ``files`` policy lists "presign" as an action of its own; legacy ``paths`` do not."""
        return self.files is not None

    def allows(self, action: str, path: str, subtree: bool = False) -> bool:
        try:
            check_file_path(path)
        except ValueError:
            return False
        return any(rule.allows(action, path, subtree) for rule in self.rules())


class LLMGrant(_Section):
    models: list[str] | None = None

    def can_use_model(self, *, provider: str, model: str) -> bool:
        provider, model = provider.strip(), model.strip()
        if not provider or not model:
            return False
        if self.models is None:
            return True
        wanted = f"{provider}/{model}"
        return any(
            wanted == pattern or (pattern.endswith("*") and wanted.startswith(pattern[:-1]))
            for pattern in self.models
        )


# ---------------------------------------------------------------- sections only type-checked


class LivekitGrant(_Section):
    breakout_rooms: list[str] | None = None


class MessagingGrant(_Section):
    broadcast: bool = True
    list: bool = True
    send: bool = True


class TableGrant(_Section):
    name: str
    namespace: list[str] | None = None
    write: bool = False
    read: bool = True
    alter: bool = False


class DatasetGrant(_Section):
    tables: list[TableGrant] | None = None
    list_tables: bool = True


class SqliteTableGrant(_Section):
    database: str
    table: str
    namespace: list[str] | None = None
    write: bool = False
    read: bool = True
    alter: bool = False


class SqliteDatabaseGrant(_Section):
    name: str
    namespace: list[str] | None = None
    create_table: bool = True
    drop: bool = False
    inspect: bool = True
    list_tables: bool = True
    execute: bool = True
    tables: list[SqliteTableGrant] | None = None


class SqliteGrant(_Section):
    databases: list[SqliteDatabaseGrant] | None = None
    create_database: bool = True
    list_databases: bool = True


class MemoryPermissions(_Section):
    create: bool = True
    drop: bool = True
    inspect: bool = True
    query: bool = True
    upsert: bool = True
    ingest: bool = True
    recall: bool = True
    optimize: bool = True


class MemoryEntryGrant(_Section):
    name: str
    namespace: list[str] | None = None
    permissions: MemoryPermissions = Field(default_factory=MemoryPermissions)


class MemoryGrant(_Section):
    list: bool = True
    memories: List[MemoryEntryGrant] | None = None  # noqa: UP006


class SyncPathGrant(_Section):
    path: str
    read_only: bool = False


class SyncGrant(_Section):
    paths: list[SyncPathGrant] | None = None


class ContainerRegistryGrant(_Section):
    list: List[str] | None = None  # noqa: UP006
    pull: List[str] | None = None  # noqa: UP006
    run: List[str] | None = None  # noqa: UP006
    write: List[str] | None = None  # noqa: UP006


class ContainersGrant(_Section):
    logs: bool = True
    pull: list[str] | None = None
    run: list[str] | None = None
    registry: ContainerRegistryGrant | None = None
    use_containers: bool = True


class DeveloperGrant(_Section):
    logs: bool = True


class AgentsGrant(_Section):
    register_agent: bool = True
    register_public_toolkit: bool = True
    register_private_toolkit: bool = True
    call: bool = True
    use_agents: bool = True
    use_tools: bool = True
    allowed_toolkits: list[str] | None = None


class AdminGrant(_Section):
    config: bool = True


class SecretsGrant(_Section):
    pass


class TunnelsGrant(_Section):
    ports: list[str] | None = None


class ServicesGrant(_Section):
    list: bool = True


class ApiScope(_Section):
    """Which room APIs a participant may call: a missing (or null) section = none of it."""

    livekit: LivekitGrant | None = None
    queues: QueuesGrant | None = None
    messaging: MessagingGrant | None = None
    dataset: DatasetGrant | None = Field(
        default=None, validation_alias=AliasChoices("dataset", "database", "datasets"))
    sqlite: SqliteGrant | None = None
    memory: MemoryGrant | None = None
    sync: SyncGrant | None = None
    storage: StorageGrant | None = None
    containers: ContainersGrant | None = None
    developer: DeveloperGrant | None = None
    agents: AgentsGrant | None = None
    llm: LLMGrant | None = None
    admin: AdminGrant | None = None
    secrets: SecretsGrant | None = None
    tunnels: TunnelsGrant | None = None
    services: ServicesGrant | None = None

    def has(self, section: str) -> bool:
        return section in _SECTIONS and getattr(self, section) is not None


API_SECTIONS = tuple(ApiScope.model_fields)
_SECTIONS = frozenset(API_SECTIONS)  # asked on every call: a set, not pydantic's field table
# What the SDK's ApiScope.agent_default() grants.
AGENT_DEFAULT_SECTIONS = (
    "livekit", "queues", "messaging", "dataset", "sqlite", "memory", "sync",
    "storage", "containers", "developer", "agents", "llm", "services",
)


def parse_api_scope(scope: Any) -> ApiScope:
    """The ``api`` grant's scope as a model; ``GrantError`` naming each problem otherwise."""
    if not isinstance(scope, dict):
        raise GrantError(f"the api grant's scope must be a JSON object, not {type(scope).__name__}")
    try:
        return ApiScope.model_validate(scope)
    except ValidationError as error:
        raise GrantError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False)[:5]:
        where = "api." + ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            problems.append(f"{where} is not a field of the SDK's grant model")
        else:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message} (got {item.get('input')!r})"[:300])
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
