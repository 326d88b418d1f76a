"""Every bound the room server keeps, in one place (docs/hardening.md explains each).

Defaults suit a laptop or a CI machine; ``RoomServer(limits=Limits(...))`` and the
``localmesh serve --limit NAME=VALUE`` option change them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

MiB = 1024 * 1024
# Old names ``--limit`` still takes: max_upload_bytes and the storage's own max_file_bytes
# were two bounds on the same thing (one file); they are one limit now.
RENAMED = {"max_upload_bytes": "max_file_bytes"}


@dataclass(frozen=True)
class Limits:
    # What a client sends on the room websocket, checked as it arrives.
    max_message_bytes: int = 16 * MiB  # one request message (the SDK's 16 MiB frame cap)
    max_packet_bytes: int = 64 * 1024  # one data packet (the SDK sends 1 KiB packets)
    max_frame_bytes: int = MiB  # one room websocket frame; a bigger one closes with 1009 unread
    inbound_budget_bytes: int = 256 * MiB  # unfinished messages of all connections together
    # What the server writes to a client.
    outbox_bytes: int = 8 * MiB  # queued for one client before it counts as too slow
    write_timeout: float = 10.0  # a write that makes no progress this long ends the client
    # Requests of one connection.
    max_active_calls: int = 32  # past this, the connection's socket is not read until one ends
    max_waiting_calls: int = 1024  # long-polls and streams waiting at once on one connection
    # Connections.
    max_connections: int = 1000  # open TCP connections; past it the oldest idle handshake goes
    handshake_timeout: float = 10.0  # to send a complete HTTP request after connecting
    ping_interval: float = 20.0  # websocket ping period ...
    ping_timeout: float = 20.0  # ... and how long a pong may take before the client is dropped
    max_token_bytes: int = 64 * 1024  # a participant token; longer ones get 403 with a reason
    max_header_bytes: int = 128 * 1024  # the HTTP request head the parser takes at all
    shutdown_grace: float = 2.0  # after SIGTERM, connections still open this long are cut
    # Storage.
    max_file_bytes: int = 1024 * MiB  # one stored file, however uploaded; refused before stored
    # Memory kept for later.
    llm_max_body_bytes: int = 16 * MiB  # one LLM request body (HTTP or websocket frame)
    llm_transcript_entries: int = 1000  # requests kept per room for transcript()
    llm_transcript_bytes: int = 8 * MiB  # request text kept per room for transcript()
    llm_remembered_bytes: int = 32 * MiB  # histories kept per room for previous_response_id
    developer_log_entries: int = 1000  # developer.log entries kept per room
    developer_log_bytes: int = 4 * MiB  # developer.log data kept per room

    def replace(self, **changes: object) -> Limits:
        return dataclasses.replace(self, **changes)

    @classmethod
    def names(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]

    def with_text(self, assignments: list[str]) -> Limits:
        """Apply ``NAME=VALUE`` strings (the CLI's ``--limit``); a clear ValueError otherwise."""
        changes: dict[str, object] = {}
        types = {field.name: field.type for field in dataclasses.fields(self)}
        for text in assignments:
            name, sep, value = text.partition("=")
            name = name.strip().replace("-", "_")
            name = RENAMED.get(name, name)
            if not sep or name not in types:
                raise ValueError(
                    f"--limit takes NAME=VALUE with NAME one of: {', '.join(self.names())}"
                    f" (got {text!r})"
                )
            try:
                number = float(value) if types[name] in ("float", float) else int(value)
            except ValueError:
                raise ValueError(f"--limit {name} needs a number, not {value!r}") from None
            if number <= 0:
                raise ValueError(f"--limit {name} must be positive, not {value!r}")
            changes[name] = number
        return self.replace(**changes)
