"""Everything one emulator holds, wired together: store, keys, models, toolkits, rooms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jwt

from localmesh.emulator.calls import Call, Handler, NowHandler
from localmesh.emulator.diskfull import DiskGuard
from localmesh.emulator.faults import FaultFired, Faults
from localmesh.emulator.keys import Keyring, adopt_keys, load_or_create_keys
from localmesh.emulator.limits import Limits
from localmesh.emulator.llm import Caller, LLMHub
from localmesh.emulator.llm.summary import answer_of
from localmesh.emulator.namespaces import MAIN, in_namespace, namespace_of, room_key, room_name
from localmesh.emulator.paths import basename
from localmesh.emulator.queues import DEFAULT_LONG_POLL_WINDOW, Queues
from localmesh.emulator.rooms import Rooms
from localmesh.emulator.services import LocalRuntime, RunnerSettings, Services
from localmesh.emulator.services.toolkit import ServicesToolkit
from localmesh.emulator.snapshot import Snapshot, restore_rooms
from localmesh.emulator.storage import Storage, canonical_file
from localmesh.emulator.store import Store
from localmesh.emulator.timeline import DEFAULT_TIMELINE_SIZE, Timeline
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
from localmesh.scripted_llm import TranscriptEntry, load_script
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
    timeline_size: int = DEFAULT_TIMELINE_SIZE  # events kept per room
    durable: bool = True  # False: no fsync (test servers; see Store.open)


@dataclass
class EmulatorState:
    settings: Settings
    store: Store
    keyring: Keyring
    verifier: TokenVerifier
    queues: Queues
    storage: Storage
    rooms: Rooms
    llm: LLMHub
    services: Services
    timeline: Timeline
    faults: Faults
    tools: dict[tuple[str, str], Handler] = field(default_factory=dict)
    # The calls that can be answered without a task (``calls.NowHandler``), when no fault aims
    # at them and the disk is not full (the task path has the disk guard's retry).
    tools_now: dict[tuple[str, str], NowHandler] = field(default_factory=dict)
    disk: DiskGuard | None = None
    public_url: str = ""  # set once the server listens
    # Long-poll windows of projects that set their own (namespace -> seconds).
    windows: dict[str, float] = field(default_factory=dict)
    # Set when the server begins to stop: long-lived responses (the Studio's live stream) end.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    connections: ConnectionGuard | None = None  # set by RoomServer once uvicorn runs
    budget: InboundBudget = field(default_factory=lambda: InboundBudget(0))

    @classmethod
    async def open(cls, settings: Settings, snapshot: Snapshot | None = None) -> EmulatorState:
        """Open the store (creating the main project's key on first start) and wire the
        models. With ``snapshot``, its rooms are imported into the main project and its keys
        adopted (a new store takes them as its own; an existing one accepts them too)."""
        # The script first: a bad one must fail before anything holds the process open.
        limits = settings.limits
        timeline = Timeline(settings.timeline_size)
        llm = LLMHub(
            None if settings.llm_script is None else load_script(settings.llm_script),
            bounds=MemoryBounds(
                transcript_entries=limits.llm_transcript_entries,
                transcript_bytes=limits.llm_transcript_bytes,
                remembered_bytes=limits.llm_remembered_bytes,
            ),
            label=room_name, observer=lambda room, entry: _record_llm(timeline, room, entry),
            group=namespace_of,  # each project's check failures in a list of its own
        )
        store = await Store.open(settings.data_dir, durable=settings.durable)
        try:
            store.claim()
            if snapshot is not None:
                await adopt_keys(store, snapshot.keys)
            keys = await load_or_create_keys(store)
            queues = Queues(store, long_poll_window=settings.long_poll_window, clock=settings.clock)
            queues.load()
            if snapshot is not None:
                await restore_rooms(store, queues, snapshot, lambda name: name)
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
        keyring = Keyring(keys)
        # Delays and refusal windows run on the server's clock, virtual in tests.
        faults = Faults(sleep=settings.clock.sleep, now=settings.clock.time,
                        observer=lambda fired: _record_fault(timeline, fired))
        state = cls(
            settings=settings, store=store, keyring=keyring,
            verifier=TokenVerifier(keyring.by_id, now=settings.clock.time),
            queues=queues, storage=Storage(store, max_file_bytes=settings.limits.max_file_bytes),
            llm=llm, services=services,
            rooms=Rooms(max_log_entries=limits.developer_log_entries,
                        max_log_bytes=limits.developer_log_bytes),
            timeline=timeline, faults=faults,
            budget=InboundBudget(settings.limits.inbound_budget_bytes),
        )

        def room_active(room: str) -> None:
            # Project services run in the main project's rooms (a test's projects have none).
            if namespace_of(room) == MAIN:
                services.supervisor.room_active(room)

        state.rooms.on_active = room_active
        queues_toolkit = QueuesToolkit(queues, timeline.record, state.window_of)
        toolkits = [
            queues_toolkit,
            StorageToolkit(state.storage, state.rooms.broadcast, state.download_url, timeline.record,
                           write_guard=lambda *write: state.faults.write_guard(*write)),
            DeveloperToolkit(state.rooms.record_developer_log),
            MessagingToolkit(state.rooms.participants),
            ServicesToolkit(services.supervisor),
        ]
        disk = DiskGuard(settings.data_dir, make_room=state.store.shrink_wal)
        for toolkit in toolkits:
            for tool, handler in toolkit.handlers().items():
                state.tools[(toolkit.name, tool)] = disk.wrap(toolkit.name, tool, handler)
        state.tools_now.update(
            ((queues_toolkit.name, tool), handler)
            for tool, handler in queues_toolkit.handlers_now().items())
        state.disk = disk
        return state

    async def close(self) -> None:
        await self.services.stop()
        await self.queues.settle()
        await self.store.close()

    @property
    def api_key(self) -> ApiKey:
        return self.keyring.main

    @property
    def keys(self) -> list[ApiKey]:
        return list(self.keyring.by_id.values())

    def tool(self, toolkit: str, tool: str) -> Handler | None:
        handler = self.tools.get((toolkit, tool))
        if handler is None or not self.faults.armed(toolkit, tool):
            return handler
        return self.faults.wrap(handler)

    def tool_now(self, toolkit: str, tool: str) -> NowHandler | None:
        handler = self.tools_now.get((toolkit, tool))
        if handler is None or (self.disk is not None and self.disk.full) or self.faults.armed(toolkit, tool):
            return None
        return handler

    @property
    def llm_max_body_bytes(self) -> int:
        return self.settings.limits.llm_max_body_bytes

    def window_of(self, room: str) -> float | None:
        return self.windows.get(namespace_of(room)) if self.windows else None

    # ------------------------------------------------------------ tokens

    def mint_token(self, *, room: str, name: str, role: str = "agent",
                   api: dict[str, Any] | None = None,
                   expires_in: timedelta | None = None) -> str:
        # expiry counts on the server's clock, so virtual time can reach it
        return mint_token(self.api_key, room=room, name=name, role=role, api=api,
                          expires_in=expires_in, now=self.settings.clock.time())

    def participant(self, token: str, room: str) -> Participant:
        return self.verifier.participant(token, room=room)

    def room_key_of(self, participant: Participant) -> str:
        """The key of the room a verified participant joins: its token's room, in the
        project of the key that signed the token."""
        return room_key(self.keyring.namespace(participant.key_id), participant.room)

    def is_api_key(self, text: str) -> bool:
        """Whether ``text`` is the API key of a project of this emulator."""
        return self.keyring.by_text(text) is not None

    def is_main_api_key(self, text: str) -> bool:
        """Whether ``text`` is an API key of the main project (the one `localmesh serve` has)."""
        key = self.keyring.by_text(text)
        return key is not None and self.keyring.namespace(key.key_id) == MAIN

    @property
    def main_keys(self) -> list[ApiKey]:
        return [k for k in self.keyring.by_id.values() if self.keyring.namespace(k.key_id) == MAIN]

    async def llm_caller(self, authorization: str | None) -> Caller:
        """Who an LLM request speaks for: its token's room (in the project of the key that
        signed it), or an API key's project."""
        token = bearer_token(authorization)
        if token is None:
            raise LLMAuthError("no 'Authorization: Bearer <participant token or API key>' header")
        key = self.keyring.by_text(token)
        if key is not None:
            namespace = self.keyring.namespace(key.key_id)
            return Caller(None, lambda room: room_key(namespace, room))
        try:
            claims, key = self.verifier.verify_key(token)
            granted = parse_grants(claims)
        except AuthError as error:
            raise LLMAuthError(str(error)) from None
        room = granted.get("room")
        if room is None:
            raise LLMAuthError("token has no room grant")
        api = granted.get("api")
        if api is None or api.llm is None:
            raise LLMAuthError("token's api grant has no llm section, so it may not call the LLM")
        name = claims.get("name")
        return Caller(room_key(self.keyring.namespace(key.key_id), room),
                      participant=name if isinstance(name, str) else None)

    async def place_file(self, room: str, path: str, text: str) -> None:
        """Create a file in room storage unless one is there (a service spec's ``files``)."""
        path = canonical_file(path)
        if await self.storage.stat(room, path) is None:
            await self.storage.write(room, path, text.encode(), guess_mime_type(basename(path)),
                                     overwrite=False)

    # ------------------------------------------------------------ reset

    async def reset(self, rooms: Callable[[str], bool], *, namespace: str | None = None,
                    room: str | None = None) -> None:
        """Forget what the rooms ``rooms`` picks hold: queues and their messages, files,
        faults, LLM scripts and transcripts, timeline, developer logs. The store is cleared
        by ``room`` (a key) if given, else by ``namespace`` (None: every room)."""
        # The rows go and the queues are forgotten with no await in between, so a send that
        # runs meanwhile finds no stale queue; the commit is awaited last.
        cleared = self.store.clear_rooms(namespace, room)
        self.queues.forget(rooms)
        if room is not None:
            self.faults.clear(lambda fault: fault.room == room)
        elif namespace is not None:
            self.faults.clear(lambda fault: fault.belongs_to(namespace))
        else:
            self.faults.clear()
        self.llm.forget(rooms)
        self.timeline.clear(rooms)
        self.rooms.forget(rooms)
        await cleared

    def rooms_of(self, namespace: str | None) -> Callable[[str], bool]:
        return in_namespace(namespace)

    # ------------------------------------------------------------ presigned downloads

    def download_url(self, call: Call, path: str) -> str:
        signature = self.sign_download(call.room, path)
        # Quoted: a file may be called "a #1?.txt"; the route gets the path back decoded.
        where = f"{quote(room_name(call.room), safe='')}/{quote(path)}"
        return f"{self.public_url}/_localmesh/download/{where}?sig={signature}"

    def sign_download(self, room: str, path: str) -> str:
        claims = {"room": room, "path": path, "exp": datetime.now(UTC) + DOWNLOAD_URL_LIFETIME}
        return jwt.encode(claims, self.api_key.secret, algorithm="HS256")

    def check_download(self, room: str, path: str, signature: str) -> str:
        """Verify a download link for ``room`` (its name) and ``path``; return the room key
        it was signed for."""
        try:
            claims = jwt.decode(signature, self.api_key.secret, algorithms=["HS256"])
        except jwt.PyJWTError as error:
            raise AuthError(f"download link is not valid: {error}") from None
        key = claims.get("room")
        if not isinstance(key, str) or room_name(key) != room or claims.get("path") != path:
            raise AuthError("download link was signed for another file")
        return key


def _record_fault(timeline: Timeline, fired: FaultFired) -> None:
    fault = fired.fault
    timeline.record(fired.room, "fault", fired.participant, fired.subject,
                    fault.code if fault.kind == "error" else None, detail=fired.detail)


def _record_llm(timeline: Timeline, room: str, entry: TranscriptEntry) -> None:
    if entry.error is not None:
        status = entry.error.get("status")
        outcome = "dropped" if entry.dropped else f"error {status}"
    elif entry.response is not None:
        outcome = "function calls" if answer_of(entry.response)[0] else "answer"
    else:
        outcome = "no answer"
    timeline.record(
        room, "llm", entry.participant, entry.rule or "", entry.error.get("status") if entry.error else None,
        detail=f"{outcome} (turn {entry.turn}, {entry.transport}, {entry.provider} {entry.api}"
               f"{'' if entry.model is None else ', model ' + entry.model})",
    )
