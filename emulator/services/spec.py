"""The MeshAgent service spec (``kind: Service``), validated the way the real server takes it.

Every object refuses keys it does not know, so a typo is an error naming the field
(``metadata.nmae: unknown field``), never a silently ignored setting. These models follow
the spec's documented fields; what a local machine can actually run is decided elsewhere
(``launch.py``), so a spec can be valid and still refused for being unrunnable offline.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# The room's own API listens on this port inside a room; a service may not claim it.
RESERVED_PORTS = frozenset({8078})
SERVICE_ID_ANNOTATION = "meshagent.service.id"


class SpecError(ValueError):
    """A spec that does not validate; ``str(error)`` names each bad field and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _api_scope(value: Any) -> Any:
    # An api scope is a map of sections (queues, storage...) to their settings; the SDK's
    # own model ignores sections it does not know, so only the shape is checked here.
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("must be a map of API sections, such as {queues: {}, storage: {}}")
    for section, settings in value.items():
        if settings is not None and not isinstance(settings, dict):
            raise ValueError(f"section {section!r} must be a map, not {type(settings).__name__}")
    return value


# ---------------------------------------------------------------- agents


class PromptTemplate(_Strict):
    name: str
    description: str | None = None
    prompt: str
    annotations: dict[str, str] | None = None


class EmailChannel(_Strict):
    address: str
    private: bool = True
    annotations: dict[str, str] | None = None


class QueueChannel(_Strict):
    queue: str
    threading_mode: Literal["default-new"] | None = None
    message_schema: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None


class MessagingChannel(_Strict):
    protocol: str = "meshagent.agent-message.v1"
    prompts: list[PromptTemplate] | None = None
    annotations: dict[str, str] | None = None


class ToolkitChannel(_Strict):
    name: str
    annotations: dict[str, str] | None = None


class Channels(_Strict):
    email: list[EmailChannel] | None = None
    messaging: list[MessagingChannel] | None = None
    queue: list[QueueChannel] | None = None
    toolkit: list[ToolkitChannel] | None = None


class AgentEmail(_Strict):
    address: str
    public: bool = False

    @field_validator("address")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class Heartbeat(_Strict):
    queue: str
    thread_id: str | None = None
    prompt: list[dict[str, Any]] | None = None
    minutes: int = Field(gt=0)

    @model_validator(mode="after")
    def _complete(self) -> Heartbeat:
        if not self.queue.strip():
            raise ValueError("heartbeat.queue must not be empty")
        if not self.prompt:
            raise ValueError("heartbeat needs a prompt")
        return self


class Agent(_Strict):
    name: str
    description: str | None = None
    annotations: dict[str, str] | None = None
    channels: Channels | None = None
    email: AgentEmail | None = None
    heartbeat: Heartbeat | None = None


# ---------------------------------------------------------------- ports


class MeshagentEndpoint(_Strict):
    identity: str
    api: dict[str, Any] | None = None

    @field_validator("api", mode="before")
    @classmethod
    def _scope(cls, value: Any) -> Any:
        return _api_scope(value)


class McpToolFilter(_Strict):
    tool_names: list[str] | None = None
    read_only: bool | None = None


class McpEndpoint(_Strict):
    label: str
    description: str | None = None
    allowed_tools: list[McpToolFilter] | None = None
    headers: dict[str, str] | None = None
    require_approval: Literal["always", "never"] | None = None
    oauth: dict[str, Any] | None = None
    openai_connector_id: str | None = None
    use_proxy_secret: str | None = None


class Endpoint(_Strict):
    path: str
    meshagent: MeshagentEndpoint | None = None
    mcp: McpEndpoint | None = None
    annotations: dict[str, str] | None = None


class Port(_Strict):
    num: Literal["*"] | int = "*"
    host_port: int | None = Field(default=None, gt=0)
    type: Literal["http", "tcp"] | None = "http"
    endpoints: list[Endpoint] = Field(default_factory=list)
    liveness: str | None = None
    published: bool | None = None
    public: bool | None = None
    annotations: dict[str, str] | None = None

    @field_validator("num", mode="before")
    @classmethod
    def _port_number(cls, value: Any) -> Any:
        if value == "*":
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'must be "*" (any free port) or a port number, not {value!r}')
        if value <= 0 or value > 65535:
            raise ValueError(f"{value} is not a port number (1-65535)")
        if value in RESERVED_PORTS:
            raise ValueError(f"port {value} is reserved for the room's own API; choose another")
        return value


# ---------------------------------------------------------------- container


class TokenValue(BaseModel):
    # The SDK's model takes extra keys here (and ignores them); so does this one.
    identity: str
    api: dict[str, Any] | None = None
    role: Literal["user", "agent", "tool"] | None = None

    @field_validator("api", mode="before")
    @classmethod
    def _scope(cls, value: Any) -> Any:
        return _api_scope(value)


class SecretValue(_Strict):
    id: str


class EnvironmentVariable(_Strict):
    name: str
    value: str | None = None
    token: TokenValue | None = None
    secret: SecretValue | None = None


class RunAs(_Strict):
    email: str
    scopes: list[str] = Field(default_factory=lambda: ["secrets:proxy"])


class RoomMount(_Strict):
    path: str
    subpath: str | None = None
    read_only: bool = False


class VolumeMount(_Strict):
    name: str
    path: str
    subpath: str | None = None
    read_only: bool = False


class ImageMount(_Strict):
    image: str
    path: str
    subpath: str | None = None
    read_only: bool = True


class FileMount(_Strict):
    path: str
    text: str
    read_only: bool = True


class EmptyDirMount(_Strict):
    path: str
    read_only: bool = False


class ConfigMount(_Strict):
    path: str = "/var/run/meshagent"


class Mounts(_Strict):
    room: list[RoomMount] | None = None
    volumes: list[VolumeMount] | None = None
    images: list[ImageMount] | None = None
    files: list[FileMount] | None = None
    empty_dirs: list[EmptyDirMount] | None = None
    configs: list[ConfigMount] | None = None


class Container(_Strict):
    image: str
    run_as: RunAs | None = None
    template: Literal["agent", "none"] | None = "agent"
    command: str | None = None
    working_dir: str | None = None
    pull_secret: SecretValue | None = None
    environment: list[EnvironmentVariable] | None = None
    storage: Mounts | None = None
    on_demand: bool | None = None
    writable_root_fs: bool | None = None
    private: bool = True

    @model_validator(mode="after")
    def _secrets_need_run_as(self) -> Container:
        if self.run_as is None and any(e.secret is not None for e in self.environment or ()):
            raise ValueError("container.run_as is required when an environment variable uses a secret")
        return self


# ---------------------------------------------------------------- the service


class Metadata(_Strict):
    name: str
    description: str | None = None
    repo: str | None = None
    icon: str | None = None
    annotations: dict[str, str] | None = None

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class ServiceFile(_Strict):
    path: str
    text: str


class External(_Strict):
    url: str | None = None


class ServiceSpec(_Strict):
    version: Literal["v1"]
    kind: Literal["Service"]
    id: str | None = None
    enabled: bool = True
    metadata: Metadata
    agents: list[Agent] | None = None
    ports: list[Port] | None = Field(default_factory=list)
    files: list[ServiceFile] | None = None
    container: Container | None = None
    external: External | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _not_a_template(cls, value: Any) -> Any:
        if value == "ServiceTemplate":
            raise ValueError("a ServiceTemplate must be rendered first (service create-template)")
        return value

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_json(self) -> dict[str, Any]:
        """The spec as the accounts API answers it: defaults filled in, nulls left out."""
        return self.model_dump(mode="json", exclude_none=True)


def _where(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "spec"


def _reason(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def describe(error: ValidationError) -> str:
    """One line per bad field: ``ports[0].num: port 8078 is reserved ...``."""
    lines = []
    for item in error.errors():
        # Drop pydantic's union branch labels (e.g. "literal['*']") from the location.
        location = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        lines.append(f"{_where(location)}: {_reason(item)}")
    return "; ".join(dict.fromkeys(lines))


def parse_spec(data: Any) -> ServiceSpec:
    """Validate a spec (already decoded from JSON or YAML); ``SpecError`` says what is wrong."""
    if not isinstance(data, dict):
        raise SpecError(f"a service spec is a map with version, kind and metadata, not {type(data).__name__}")
    try:
        return ServiceSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(describe(error)) from None
