"""``LLMHub``: the scripts of every room, one player per room, and their transcripts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from localmesh.scripted_llm.errors import ScriptFailed
from localmesh.scripted_llm.player import MemoryBounds, RuleFailure, ScriptPlayer, Sleep
from localmesh.scripted_llm.script import Script, load_demo_script
from localmesh.scripted_llm.transcript import TranscriptEntry


class LLMHub:
    """Rooms use the default script (the demo unless given) unless a room has its own.

    ``sleep`` is what transports await for a rule's ``delay`` (inject a fake in tests);
    ``clock`` gives ``created_at`` (0 by default, for deterministic transcripts).
    Rooms are named by the keys the caller uses; ``label`` turns a key into the room name
    transcripts show, ``observer(room, entry)`` hears of every exchange, and ``group(room)``
    names the group (the emulator's project) whose own list of check failures a room's player
    adds to: the main group's is ``failures``, another's is ``group_failures(name)``.
    """

    def __init__(
        self,
        default_script: Script | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], int] | None = None,
        bounds: MemoryBounds | None = None,
        label: Callable[[str], str] | None = None,
        observer: Callable[[str, TranscriptEntry], None] | None = None,
        group: Callable[[str], str] | None = None,
    ) -> None:
        self._default = default_script if default_script is not None else load_demo_script()
        self._scripts: dict[str, Script] = {}
        self._players: dict[str, ScriptPlayer] = {}
        self.sleep = sleep
        self._clock = clock
        self.bounds = bounds or MemoryBounds()
        # Every room's check failures (expect, Python rules), kept across resets until cleared.
        self.failures: list[RuleFailure] = []
        self._label = label or (lambda room: room)
        self.observer = observer
        self._group = group or (lambda room: "")
        self._group_failures: dict[str, list[RuleFailure]] = {}

    @property
    def default_script(self) -> Script:
        return self._default

    def set_default_script(self, script: Script) -> None:
        """Replace the default; rooms without their own script start afresh with it."""
        self._default = script
        for room in [r for r in self._players if r not in self._scripts]:
            del self._players[room]

    def set_script(self, room: str, script: Script | None) -> None:
        """Give a room its own script (``None``: back to the default). Resets the room."""
        if script is None:
            self._scripts.pop(room, None)
        else:
            self._scripts[room] = script
        self._players.pop(room, None)

    def script(self, room: str) -> Script:
        return self._scripts.get(room, self._default)

    def player(self, room: str) -> ScriptPlayer:
        """The room's player, created on first use."""
        player = self._players.get(room)
        if player is None:
            player = ScriptPlayer(
                self.script(room), room=self._label(room), sleep=self.sleep, clock=self._clock,
                bounds=self.bounds, failures=self.failures_for(room),
            )
            if self.observer is not None:
                observer = self.observer
                player.observer = lambda entry: observer(room, entry)
            self._players[room] = player
        return player

    def has_own_script(self, room: str) -> bool:
        return room in self._scripts

    def rooms(self) -> list[str]:
        """The rooms whose LLM has been asked something (or had a script set)."""
        return sorted(set(self._players) | set(self._scripts))

    def forget(self, rooms: Callable[[str], bool]) -> None:
        """Drop the scripts, players and transcripts of the rooms ``rooms`` picks."""
        for table in (self._scripts, self._players):
            for room in [r for r in table if rooms(r)]:
                del table[room]

    def transcript(self, room: str, conversation: str | None = None) -> list[TranscriptEntry]:
        """Every request of the room and its answer, in order (optionally one conversation)."""
        player = self._players.get(room)
        entries = player.transcript if player is not None else []
        if conversation is not None:
            entries = [e for e in entries if e.conversation == conversation]
        return entries

    def clear_transcript(self, room: str) -> None:
        """Forget the transcript only; use counts and conversations stay."""
        player = self._players.get(room)
        if player is not None:
            player.clear_transcript()

    def reset(self, room: str) -> None:
        """Forget the room's use counts, conversations and transcript (keeps its script)."""
        self._players.pop(room, None)

    def check(self) -> None:
        """Raise ``ScriptFailed`` if a request in any room broke a check of its script, and
        forget those failures (raised once, they are handled)."""
        if self.failures:
            failures = list(self.failures)
            self.failures.clear()
            raise ScriptFailed(failures)

    def clear_failures(self) -> None:
        self.failures.clear()

    def failures_for(self, room: str) -> list[RuleFailure]:
        """The list the room's player keeps its check failures in (its group's)."""
        group = self._group(room)
        return self.failures if not group else self._group_failures.setdefault(group, [])

    def group_failures(self, group: str) -> list[RuleFailure]:
        return self.failures if not group else self._group_failures.setdefault(group, [])

    def drop_group(self, group: str) -> None:
        """Forget a group's failures (its project was closed)."""
        self._group_failures.pop(group, None)
