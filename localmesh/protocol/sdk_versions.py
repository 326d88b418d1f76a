"""What the SDK version a client announces (the ``?v=`` of its room URL) tells the server.

Every MeshAgent SDK client appends ``v=<meshagent-api version>`` to the room URL. The
differences between versions that a server has to handle are written in
docs/sdk-versions.md; the ones that change what localmesh does are decided here.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

# Up to 0.47.0 the SDK sends each room.tool_call_request_chunk as a request and waits for a
# reply before sending the next one; from 0.47.1 on it sends chunks without waiting.
CHUNKS_UNANSWERED_FROM = Version("0.47.1")


@dataclass(frozen=True)
class ClientVersion:
    """The version a client announced; ``None`` when it sent none (our own client, curl…)
    or one that does not parse."""

    announced: str | None
    version: Version | None

    @classmethod
    def parse(cls, text: str | None) -> ClientVersion:
        if not text:
            return cls(None, None)
        try:
            return cls(text, Version(text))
        except InvalidVersion:
            return cls(text, None)

    @property
    def awaits_chunk_replies(self) -> bool:
        """Whether the client waits for a reply to each request chunk it sends.

        Only a known SDK version before 0.47.1 does. A client that announces nothing gets
        no replies: a reply nobody waits for costs a message per chunk and, in the SDK, a
        log line for an unknown request id.
        """
        return self.version is not None and self.version < CHUNKS_UNANSWERED_FROM
