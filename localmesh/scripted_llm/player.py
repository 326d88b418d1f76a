"""``ScriptPlayer``: answers LLM requests from a script, and keeps the transcript.

It decides on OpenAI Responses shapes; a request in another API (Anthropic Messages, Chat
Completions) goes through its wire format (``providers``) on the way in and out. A player
belongs to one room. Ids are counters (``resp_0001``, ``fc_0002``, ``msg_0003``,
``conv_0001``) and ``created_at`` comes from an injectable clock (0 by default), so the same
script and the same requests always give byte-identical transcripts.
"""

from __future__ import annotations

import asyncio
import copy
import json
import textwrap
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from . import responses
from .conversations import Conversations, request_input
from .errors import ScriptedDrop, ScriptedError, ScriptError, ScriptFailed
from .expectations import unmet
from .matching import LLMRequest, count_turn, mismatch, request_facts
from .providers import RESPONSES, WireFormat
from .python_rules import to_answer
from .script import Answer, Match, Rule, Script
from .transcript import TranscriptEntry

Sleep = Callable[[float], Awaitable[Any]]
DEFAULT_MODEL = "localmesh-scripted"


@dataclass(frozen=True)
class Reply:
    """What a player decided for one request. Exactly one of ``response`` / ``error`` is set."""

    conversation: str | None
    turn: int
    rule: str | None
    response: dict[str, Any] | None = None
    error: ScriptedError | None = None
    delay: float = 0.0

    @property
    def dropped(self) -> bool:
        return isinstance(self.error, ScriptedDrop)


@dataclass(frozen=True)
class RuleFailure:
    """A request that broke a rule's check: ``kind`` is ``expect`` (an ``expect`` did not
    hold), ``assert`` (a Python rule's assertion failed), ``raised`` or ``returned`` (a
    Python rule raised, or returned something that is no answer). ``entry`` is the request's
    transcript index; ``message`` says what differed."""

    room: str
    rule: str
    entry: int
    turn: int
    conversation: str | None
    kind: str
    message: str

    @property
    def headline(self) -> str:
        return {
            "expect": f"the request did not meet the expectations of rule {self.rule!r}",
            "assert": f"rule {self.rule!r} failed an assertion on the request",
            "raised": f"rule {self.rule!r} raised an exception",
            "returned": f"rule {self.rule!r} returned no answer it could give",
        }[self.kind]

    def __str__(self) -> str:
        where = f"request #{self.entry} in room {self.room!r}, turn {self.turn}"
        return f"{where}: {self.headline}:\n{textwrap.indent(self.message, '  ')}"


@dataclass(frozen=True)
class _Decision:
    """What the rules decided: a rule (or the fallback) and its answer, or a failure."""

    rule: Rule | None
    answer: Answer | None
    reasons: list[str]
    failure: tuple[str, str] | None = None  # (kind, message)


@dataclass(frozen=True)
class _Asked:
    """Who was asked, in which API, for which model: what a transcript entry names."""

    provider: str
    api: str
    model: str | None
    participant: str | None = None


def _quote(text: str | None, limit: int = 60) -> str:
    if text is None:
        return "none"
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


class ScriptPlayer:
    """Plays a ``Script`` for one room: use counts, conversations, ids and the transcript."""

    def __init__(
        self,
        script: Script,
        *,
        room: str = "default",
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], int] | None = None,
        bounds: MemoryBounds | None = None,
        failures: list[RuleFailure] | None = None,
    ) -> None:
        self.script = script
        self.room = room
        self.sleep = sleep  # awaited for a rule's delay by respond() and the transports
        self._clock = clock or (lambda: 0)
        # Kept until checked, whatever the client did with the error reply; a hub shares one
        # list between its rooms' players.
        self.failures: list[RuleFailure] = failures if failures is not None else []
        self._uses: dict[int, int] = {}
        self.bounds = bounds or MemoryBounds()
        self._conversations = Conversations(
            max_responses=self.bounds.remembered_responses, max_bytes=self.bounds.remembered_bytes)
        self._transcript: deque[tuple[TranscriptEntry, int]] = deque()
        self._transcript_bytes = 0
        self._ids = {"resp": 0, "item": 0, "call": 0, "entry": 0}
        # Told about each transcript entry as it is recorded (the emulator's timeline).
        self.observer: Callable[[TranscriptEntry], None] | None = None

    # ------------------------------------------------------------ inspection

    @property
    def transcript(self) -> list[TranscriptEntry]:
        return [entry for entry, _ in self._transcript]

    def clear_transcript(self) -> None:
        self._transcript.clear()
        self._transcript_bytes = 0

    def check(self) -> None:
        """Raise ``ScriptFailed`` (an ``AssertionError``) if a request of this room broke a
        check of the script (an ``expect`` or a Python rule), and forget those failures: raised
        once, they are handled. The harness does this after each test."""
        mine = [f for f in self.failures if f.room == self.room]
        if mine:
            self.failures[:] = [f for f in self.failures if f.room != self.room]
            raise ScriptFailed(mine)

    def unused_rules(self, *, fallbacks: bool = True) -> list[str]:
        """The labels of the rules that never answered (``times: N`` rules short of N count
        as used once they answered at all). With ``fallbacks=False``, a catch-all rule after
        other rules (an answer with no conditions, no ``expect`` and no ``times``: the script's
        "otherwise") is left out, as the ``fallback`` answer is."""
        return [rule.label for rule in self.script.rules
                if not self._uses.get(rule.index) and (fallbacks or not _catch_all(rule))]

    def unmatched(self) -> list[TranscriptEntry]:
        """The requests no rule (nor the fallback) answered."""
        return [entry for entry, _ in self._transcript if entry.rule is None]

    def uses(self, rule: str | int) -> int:
        """How often a rule (by name, ``rules[i]`` label or index) has answered."""
        for candidate in self.script.rules:
            if rule in (candidate.index, candidate.label):
                return self._uses.get(candidate.index, 0)
        raise KeyError(rule)

    # ------------------------------------------------------------ answering

    async def respond(
        self,
        request: dict[str, Any],
        conversation: str | None = None,
        *,
        wire: WireFormat = RESPONSES,
        provider: str = "openai",
    ) -> dict[str, Any]:
        """Answer one request body (the JSON the client sends) in Python.

        ``request`` is in ``wire``'s format, an OpenAI Responses body by default
        (``localmesh.scripted_llm.providers`` has the others). ``conversation`` names the
        conversation explicitly (e.g. a session id); with ``None`` it is derived from
        ``previous_response_id`` or from the output items the input echoes.
        Returns the reply body in ``wire``'s format. Sleeps for a rule's ``delay`` first (with the
        injected ``sleep``). Raises ``ScriptedError`` (``status``, ``message``, ``retry_after``)
        for error answers and unmatched requests, and ``ScriptedDrop`` (a ``ScriptedError``)
        for ``drop`` answers. Recorded in the transcript with transport ``python``.
        """
        reply = self.play(request, conversation, transport="python", wire=wire, provider=provider)
        if reply.delay:
            await self.sleep(reply.delay)
        if reply.error is not None:
            raise reply.error
        assert reply.response is not None
        return reply.response

    def play(
        self,
        request: dict[str, Any],
        conversation: str | None = None,
        *,
        transport: str = "python",
        wire: WireFormat = RESPONSES,
        provider: str = "openai",
        participant: str | None = None,
    ) -> Reply:
        """Decide the answer to ``request`` and record it, without waiting or raising.

        ``request`` is a body in ``wire``'s format (OpenAI Responses by default), and the
        reply's ``response`` is in that format too; ``provider`` names who was asked
        (``openai``, ``anthropic``, ``grok``), for rules and the transcript; ``participant``
        who sent it, when a participant token did (for the transcript). Transports call
        this, then wait ``reply.delay`` and deliver the response or error.
        """
        model = request.get("model")
        asked = _Asked(provider, wire.api, model if isinstance(model, str) else None, participant)
        try:
            engine_request = wire.engine_request(request)
            history, previous = self._conversations.expand(engine_request)
        except ScriptedError as error:
            body = request if wire is RESPONSES else {}
            items = request_input(body) if isinstance(body.get("input", []), list | str) else []
            reply = Reply(conversation, count_turn(items), None, error=error)
            return self._record(request, reply, transport, asked)
        conv = self._conversations.identify(history, conversation, previous)
        facts = request_facts(engine_request, history, provider=provider, api=wire.api,
                              body=request, room=self.room, conversation=conv)
        decision = self._choose(facts)
        rule = decision.rule
        if decision.failure is not None:
            assert rule is not None
            return self._fail(request, facts, rule, *decision.failure, transport, asked)
        if rule is None and self.script.fallback is None:
            error = ScriptedError(400, self._no_match_message(facts, decision.reasons), fatal=True)
            return self._record(request, Reply(conv, facts.turn, None, error=error), transport, asked)
        answer = decision.answer if rule is not None else self.script.fallback
        assert answer is not None
        label = rule.label if rule is not None else "fallback"
        if rule is not None:
            self._uses[rule.index] = self._uses.get(rule.index, 0) + 1
        reply = self._answer(engine_request, history, conv, facts.turn, label, rule, answer)
        if reply.response is not None:
            reply = replace(reply, response=wire.wire_response(reply.response, request))
        return self._record(request, reply, transport, asked)

    def _choose(self, facts: LLMRequest) -> _Decision:
        reasons: list[str] = []
        for rule in self.script.rules:
            name = self._describe(rule)
            used = self._uses.get(rule.index, 0)
            if rule.times is not None and used >= rule.times:
                reasons.append(f"{name} (used up: times {rule.times})")
                continue
            why = mismatch(rule.match, facts)
            if why is not None:
                reasons.append(f"{name} ({why})")
                continue
            if rule.expect is not None:
                problems = unmet(rule.expect, facts)
                if problems:
                    return _Decision(rule, None, reasons, ("expect", "\n".join(problems)))
            if rule.respond is not None:
                answer, failure = self._call(rule, facts)
                if failure is not None:
                    return _Decision(rule, None, reasons, failure)
                if answer is None:
                    reasons.append(f"{name} (its function returned None)")
                    continue
                return _Decision(rule, answer, reasons)
            if rule.answer is None:  # a rule that only checks: counted, then the next rules
                self._uses[rule.index] = used + 1
                reasons.append(f"{name} (checked: its expectations hold)")
                continue
            return _Decision(rule, rule.answer, reasons)
        return _Decision(None, None, reasons)

    def _call(self, rule: Rule, facts: LLMRequest) -> tuple[Answer | None, tuple[str, str] | None]:
        """Run a Python rule: its answer, or the failure to keep (kind, message)."""
        assert rule.respond is not None
        try:
            value = rule.respond(replace(facts, body=copy.deepcopy(dict(facts.body))))
        except AssertionError as error:
            return None, ("assert", str(error) or "assert failed (no message)")
        except Exception as error:  # the test's own code: report it, never crash the endpoint
            return None, ("raised", _exception_text(error))
        if isinstance(value, Awaitable):
            close = getattr(value, "close", None)
            if close is not None:
                close()  # a coroutine never awaited would warn
            return None, ("returned", "returned an awaitable: Python rules are plain functions, "
                                      "not async")
        try:
            return to_answer(value, f"rule {rule.label!r}"), None
        except (TypeError, ScriptError) as error:
            return None, ("returned", str(error))

    def _fail(
        self, request: dict[str, Any], facts: LLMRequest, rule: Rule, kind: str, message: str,
        transport: str, asked: _Asked,
    ) -> Reply:
        failure = RuleFailure(self.room, rule.label, self._ids["entry"] + 1, facts.turn,
                              facts.conversation, kind, message)
        self.failures.append(failure)
        del self.failures[: -self.bounds.failures]
        error = ScriptedError(400, f"localmesh: {failure.headline}: {message}", fatal=True)
        return self._record(request, Reply(facts.conversation, facts.turn, rule.label, error=error),
                            transport, asked)

    @staticmethod
    def _describe(rule: Rule) -> str:
        index = f"rules[{rule.index}]"
        return f"{index} {rule.name!r}" if rule.name is not None else index

    def _no_match_message(self, facts: LLMRequest, reasons: list[str]) -> str:
        tried = "; ".join(reasons) if reasons else "the script has no rules"
        return (
            f"localmesh: no script rule matched this request (turn {facts.turn}, "
            f"latest user message {_quote(facts.user_text)}); tried: {tried}. "
            f"Add a rule or a fallback to {self.script.source}."
        )

    def _answer(
        self,
        request: dict[str, Any],
        history: list[Any],
        conv: str,
        turn: int,
        label: str,
        rule: Rule | None,
        answer: Answer,
    ) -> Reply:
        if answer.drop:
            error: ScriptedError = ScriptedDrop(f"localmesh: {label} dropped the connection")
            return Reply(conv, turn, label, error=error, delay=answer.delay)
        if answer.error is not None:
            spec = answer.error
            error = ScriptedError(
                spec.status,
                spec.message,
                retry_after=spec.retry_after,
                type=spec.type,
                code=spec.code,
                event=spec.websocket,
            )
            return Reply(conv, turn, label, error=error, delay=answer.delay)
        output = self._output(answer, rule)
        response_id = self._next("resp", "resp")
        model = request.get("model")
        body = responses.response_body(
            response_id,
            model if isinstance(model, str) and model else DEFAULT_MODEL,
            output,
            responses.usage(request.get("input"), output),
            created_at=self._clock(),
            parallel_tool_calls=bool(request.get("parallel_tool_calls", True)),
        )
        self._conversations.remember(conv, response_id, history, output)
        return Reply(conv, turn, label, response=body, delay=answer.delay)

    def _output(self, answer: Answer, rule: Rule | None) -> list[dict[str, Any]]:
        if answer.calls:
            slug = rule.slug if rule is not None else "fallback"
            items = []
            for call in answer.calls:
                self._ids["call"] += 1
                call_id = call.call_id or f"call_{slug}_{self._ids['call']}"
                arguments = json.dumps(dict(call.arguments), ensure_ascii=False)
                items.append(
                    responses.function_call_item(
                        self._next("item", "fc"), call_id, call.name, arguments, call.namespace
                    )
                )
            return items
        text = answer.json_text if answer.json_text is not None else (answer.text or "")
        return [responses.message_item(self._next("item", "msg"), text)]

    def _next(self, counter: str, prefix: str) -> str:
        self._ids[counter] += 1
        return f"{prefix}_{self._ids[counter]:04d}"

    def _record(self, request: dict[str, Any], reply: Reply, transport: str, asked: _Asked) -> Reply:
        self._ids["entry"] += 1
        size = json_size(request)
        kept: dict[str, Any] = request
        if size > self.bounds.transcript_bytes:
            kept = {"localmesh_not_kept": f"a request of {size} bytes (over the transcript's"
                                          f" {self.bounds.transcript_bytes}-byte bound)"}
            size = json_size(kept)
        entry = TranscriptEntry(
            index=self._ids["entry"],
            room=self.room,
            provider=asked.provider,
            api=asked.api,
            model=asked.model,
            participant=asked.participant,
            conversation=reply.conversation,
            turn=reply.turn,
            rule=reply.rule,
            transport=transport,
            request=copy.deepcopy(kept),
            response=copy.deepcopy(reply.response),
            error=reply.error.to_dict() if reply.error is not None else None,
            dropped=reply.dropped,
            delay=reply.delay,
        )
        # Bounded: the oldest entries go first (entry indexes keep counting).
        self._transcript.append((entry, size))
        self._transcript_bytes += size
        while self._transcript and (
            len(self._transcript) > self.bounds.transcript_entries
            or self._transcript_bytes > self.bounds.transcript_bytes
        ):
            _, dropped = self._transcript.popleft()
            self._transcript_bytes -= dropped
        if self.observer is not None:
            self.observer(entry)
        return reply


@dataclass(frozen=True)
class MemoryBounds:
    """What one room's player keeps: its transcript, and the histories that websocket
    clients continue with ``previous_response_id`` (the oldest go first)."""

    transcript_entries: int = 1000
    transcript_bytes: int = 8 * 1024 * 1024
    remembered_responses: int = 256
    remembered_bytes: int = 32 * 1024 * 1024
    failures: int = 100  # check failures kept until raised (the newest; one is enough to fail)


def json_size(value: Any) -> int:
    """About how many bytes ``value`` takes as JSON (the measure of every bound here)."""
    return len(json.dumps(value, default=str))


def _exception_text(error: Exception) -> str:
    """``ValueError: bad`` and where it was raised (the innermost frame)."""
    text = "".join(traceback.format_exception_only(error)).strip()
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        text += f"\n  at {last.filename}:{last.lineno} in {last.name}"
    return text


def _catch_all(rule: Rule) -> bool:
    return (rule.index > 0 and rule.match == Match() and rule.answer is not None
            and rule.respond is None and rule.expect is None and rule.times is None)
