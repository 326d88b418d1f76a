"""Everything one emulator holds, wired together: store, keys, models, toolkits, rooms."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jwt

from localmesh.emulator.calls import Call, Handler
from localmesh.emulator.diskfull import DiskGuard
from localmesh.emulator.faults import Faults
from localmesh.emulator.limits import Limits
from localmesh.emulator.llm import LLMHub
from localmesh.emulator.paths import basename
from localmesh.emulator.project import load_or_create_keys
from localmesh.emulator.queues import DEFAULT_LONG_POLL_WINDOW, Queues
from localmesh.emulator.rooms import Rooms
from localmesh.emulator.services import LocalRuntime, RunnerSettings, Services
from localmesh.emulator.services.toolkit import ServicesToolkit
from localmesh.emulator.storage import DEFAULT_MAX_FILE_BYTES, Storage, canonical_file
from localmesh.emulator.store import Store
from localmesh.emulator.toolkits.queues import QueuesToolkit
from localmesh.emulator.toolkits.room import DeveloperToolkit, MessagingToolkit
from localmesh.emulator.toolkits.storage import StorageToolkit
from localmesh.protocol.tokens import (
    ApiKey,
    AuthError,
    Participant,
    TokenVerifier,
    bearer_token,
    mint_token,
    parse_grants,
)
from localmesh.protocol.wire import InboundBudget, guess_mime_type
from localmesh.scripted_llm import AuthError as LLMAuthError
from localmesh.scripted_llm import load_script
from localmesh.scripted_llm.player import MemoryBounds

from .clock import Clock, WallClock

if TYPE_CHECKING:
    from localmesh.emulator.connections import ConnectionGuard

DOWNLOAD_URL_LIFETIME = timedelta(hours=1)


@dataclass
class Settings:
    data_dir: Path | None = None  # None: in memory, gone when the process ends
    long_poll_window: float = DEFAULT_LONG_POLL_WINDOW
    llm_script: Path | None = None  # None: the built-in demo script
    clock: Clock = field(default_factory=WallClock)  # a VirtualClock in tests
    # Code images for container.storage.images, as local folders (--mount-image IMAGE=DIR).
    mount_images: dict[str, Path] = field(default_factory=dict)
    services: RunnerSettings = field(default_factory=RunnerSettings)
    limits: Limits = field(default_factory=Limits)
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES  # uploads over this are refused up front


@dataclass
class EmulatorState:
    settings: Settings
    store: Store
    keys: list[ApiKey]
    verifier: TokenVerifier
    queues: Queues
    storage: Storage
    rooms: Rooms
    llm: LLMHub
    services: Services
    tools: dict[tuple[str, str], Handler] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)  # open() puts its delays on the clock
    public_url: str = ""  # set once the server listens
    # Set when the server begins to stop: long-lived responses (the Studio's live stream) end.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    connections: ConnectionGuard | None = None  # set by RoomServer once uvicorn runs
    budget: InboundBudget = field(default_factory=lambda: InboundBudget(0))

    @classmethod
    async def open(cls, settings: Settings) -> EmulatorState:
        # The script first: a bad one must fail before anything holds the process open.
        limits = settings.limits
        llm = LLMHub(
            None if settings.llm_script is None else load_script(settings.llm_script),
            bounds=MemoryBounds(
                transcript_entries=limits.llm_transcript_entries,
                transcript_bytes=limits.llm_transcript_bytes,
                remembered_bytes=limits.llm_remembered_bytes,
            ),
        )
        store = await Store.open(settings.data_dir)
        try:
            store.claim()
            keys = await load_or_create_keys(store)
            queues = Queues(store, long_poll_window=settings.long_poll_window, clock=settings.clock)
            queues.load()
            services = await Services.open(
                store.connection, data_dir=settings.data_dir,
                runtime=LocalRuntime(mount_images=dict(settings.mount_images)),
                settings=settings.services, where_api_url=lambda: state.public_url,
                project_id=keys[0].project_id,
                # Late-bound: services mint tokens and read the URL once the state exists.
                mint=lambda room, name, api, role: state.mint_token(
                    room=room, name=name, role=role, api=api),
                place_file=lambda room, path, text: state.place_file(room, path, text),
            )
        except BaseException:
            await store.close()
            raise
        state = cls(
            settings=settings, store=store, keys=keys,
            verifier=TokenVerifier(keys, now=settings.clock.time),
            queues=queues, storage=Storage(store, max_file_bytes=settings.max_file_bytes),
            llm=llm, services=services,
            rooms=Rooms(max_log_entries=limits.developer_log_entries,
                        max_log_bytes=limits.developer_log_bytes),
            budget=InboundBudget(settings.limits.inbound_budget_bytes),
            # Delays and refusal windows run on the server's clock, virtual in tests.
            faults=Faults(sleep=settings.clock.sleep, now=settings.clock.time),
        )
        state.rooms.on_active = services.supervisor.room_active
        toolkits = [
            QueuesToolkit(queues),
            StorageToolkit(state.storage, state.rooms.broadcast, state.download_url,
                           max_upload_bytes=limits.max_upload_bytes,
                           write_guard=lambda *write: state.faults.write_guard(*write)),
            DeveloperToolkit(state.rooms.record_developer_log),
            MessagingToolkit(state.rooms.participants),
            ServicesToolkit(services.supervisor),
        ]
        disk = DiskGuard(settings.data_dir)
        for toolkit in toolkits:
            for tool, handler in toolkit.handlers().items():
                state.tools[(toolkit.name, tool)] = disk.wrap(toolkit.name, tool, handler)
        return state

    async def close(self) -> None:
        await self.services.stop()
        await self.queues.settle()
        await self.store.close()

    @property
    def api_key(self) -> ApiKey:
        return self.keys[0]

    def tool(self, toolkit: str, tool: str) -> Handler | None:
        handler = self.tools.get((toolkit, tool))
        if handler is None or not self.faults.armed(toolkit, tool):
            return handler
        return self.faults.wrap(handler)

    # ------------------------------------------------------------ tokens

    def mint_token(self, *, room: str, name: str, role: str = "agent",
                   api: dict[str, Any] | None = None,
                   expires_in: timedelta | None = None) -> str:
        # expiry counts on the server's clock, so virtual time can reach it
        return mint_token(self.api_key, room=room, name=name, role=role, api=api,
                          expires_in=expires_in, now=self.settings.clock.time())

    def participant(self, token: str, room: str) -> Participant:
        return self.verifier.participant(token, room=room)

    def is_api_key(self, text: str) -> bool:
        return any(text == key.text for key in self.keys)

    async def llm_caller_room(self, authorization: str | None) -> str | None:
        """The room an LLM request speaks for: its bearer token's room, or None for the API key."""
        token = bearer_token(authorization)
        if token is None:
            raise LLMAuthError("no 'Authorization: Bearer <participant token or API key>' header")
        if self.is_api_key(token):
            return None
        try:
            granted = parse_grants(self.verifier.verify(token))
        except AuthError as error:
            raise LLMAuthError(str(error)) from None
        room = granted.get("room")
        if room is None:
            raise LLMAuthError("token has no room grant")
        api = granted.get("api")
        if api is None or api.llm is None:
            raise LLMAuthError("token's api grant has no llm section, so it may not call the LLM")
        return room

    async def place_file(self, room: str, path: str, text: str) -> None:
        """Create a file in room storage unless one is there (a service spec's ``files``)."""
        path = canonical_file(path)
        if await self.storage.stat(room, path) is None:
            await self.storage.write(room, path, text.encode(), guess_mime_type(basename(path)),
                                     overwrite=False)

    # ------------------------------------------------------------ presigned downloads

    def download_url(self, call: Call, path: str) -> str:
        signature = self.sign_download(call.room, path)
        # Quoted: a file may be called "a #1?.txt"; the route gets the path back decoded.
        where = f"{quote(call.room, safe='')}/{quote(path)}"
        return f"{self.public_url}/_localmesh/download/{where}?sig={signature}"

    def sign_download(self, room: str, path: str) -> str:
        claims = {"room": room, "path": path, "exp": datetime.now(UTC) + DOWNLOAD_URL_LIFETIME}
        return jwt.encode(claims, self.api_key.secret, algorithm="HS256")

    def check_download(self, room: str, path: str, signature: str) -> None:
        try:
            claims = jwt.decode(signature, self.api_key.secret, algorithms=["HS256"])
        except jwt.PyJWTError as error:
            raise AuthError(f"download link is not valid: {error}") from None
        if claims.get("room") != room or claims.get("path") != path:
            raise AuthError("download link was signed for another file")
