"""Lone surrogates ("\\ud800": legal JSON, not Unicode) wherever a client can put a string:
a faithful round trip for data, a clear bad-request error for names and paths, and never
a broken room."""

from __future__ import annotations

import asyncio
import json

import pytest
from harness import Figure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshagent.api import RoomException

from localmesh.emulator import RoomServer
from localmesh.fixtures.sdk import connect_meshagent_room

PROMPT = 10.0
LONE = "caf\ud800e"
KNOWN_CODES = {1001, 1002, 3001, 3002, 3004, 3005, 5001}


def _sdk(server: RoomServer, name: str):
    return connect_meshagent_room(server.room_url("r"), server.mint_token(room="r", name=name))


async def _online_with(room, name: str):
    room.messaging.enable()
    async with asyncio.timeout(PROMPT):
        while not room.messaging.online:
            await asyncio.sleep(0.01)
    return {p.get_attribute("name"): p for p in room.messaging.remote_participants}[name]


async def test_attributes_with_a_lone_surrogate_round_trip_and_messaging_stays_up():
    async with RoomServer() as server:
        async with _sdk(server, "odd") as odd:
            odd.local_participant.set_attribute("mood", LONE)
            odd.local_participant.set_attribute(LONE, "key too")
            await odd.queues.list()  # the attributes went before this request
            async with connect_meshagent_room(server.room_url("r"),
                                              server.mint_token(room="r", name="other")) as other:
                seen = await _online_with(other, "odd")
                assert seen.get_attribute("mood") == LONE
                assert seen.get_attribute(LONE) == "key too"
            # and the odd participant's own messaging comes online too
            async with connect_meshagent_room(server.room_url("r"),
                                              server.mint_token(room="r", name="third")):
                assert (await _online_with(odd, "third")).get_attribute("name") == "third"
    Figure(case="set_attributes with a lone surrogate", abuser_got="faithful round trip",
           target="no broken room: messaging.enabled reaches everyone").record()


async def test_messages_round_trip_and_names_and_paths_are_refused_clearly():
    async with RoomServer() as server:
        async with _sdk(server, "a") as room:
            async with asyncio.timeout(PROMPT):
                await room.queues.send(name="q", message={LONE: [LONE, {"t": LONE}]})
                assert await room.queues.receive(name="q", wait=False) == {LONE: [LONE, {"t": LONE}]}
                with pytest.raises(RoomException) as raised:
                    await room.queues.send(name=LONE, message={"n": 1})
                assert raised.value.code == 1002 and "lone surrogate" in str(raised.value)
                for call in (room.storage.exists(path=LONE),
                             room.storage.upload(path=f"d/{LONE}.txt", data=b"x"),
                             room.storage.download(path=LONE)):
                    with pytest.raises(RoomException) as raised:
                        await call
                    assert raised.value.code == 3004 and "lone surrogate" in str(raised.value)
                await room.queues.send(name="q", message={"after": True})
                assert await room.queues.receive(name="q", wait=False) == {"after": True}
    Figure(case="lone surrogate in a message / queue name / path",
           abuser_got="round trip / 1002 / 3004 naming the lone surrogate",
           target="clear error or faithful round trip").record()


# st.characters() leaves surrogates out: mix in strings made of them, alone or in text.
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
strings = st.one_of(
    st.text(max_size=8),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=3), st.text(surrogates, min_size=1, max_size=2),
              st.text(max_size=3)),
)
CALLS = [
    ("queues", "send", lambda s: {"name": "q", "message": {s: [s]}}),
    ("queues", "send", lambda s: {"name": s or "q", "message": {}}),
    ("queues", "receive", lambda s: {"name": s or "q", "wait": False}),
    ("queues", "open", lambda s: {"name": s}),
    ("storage", "exists", lambda s: {"path": s}),
    ("storage", "list", lambda s: {"path": s}),
    ("storage", "delete", lambda s: {"path": s}),
    ("storage", "move", lambda s: {"source_path": s, "destination_path": s + "x"}),
    ("developer", "log", lambda s: {"type": s, "data": {s: s}}),
    (lambda s: s, "x", lambda s: {}),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(range(len(CALLS))), strings), min_size=1, max_size=6))
def test_any_string_anywhere_gets_an_answer_and_never_breaks_the_room(calls):
    asyncio.run(_fuzz(calls))


async def _fuzz(calls) -> None:
    async with RoomServer() as server:
        async with _sdk(server, "fuzz") as room:
            for index, text in calls:
                toolkit, tool, arguments = CALLS[index]
                toolkit = toolkit(text) if callable(toolkit) else toolkit
                room.local_participant.set_attribute("last", text)
                try:
                    async with asyncio.timeout(PROMPT):
                        await room.invoke(toolkit=toolkit, tool=tool, input=arguments(text))
                except RoomException as error:
                    # a clear refusal, never "localmesh failed to run ..."
                    assert error.code in KNOWN_CODES, (toolkit, tool, text, error)
            async with connect_meshagent_room(server.room_url("r"),
                                              server.mint_token(room="r", name="other")) as other:
                # JSON joins an escaped surrogate pair into one character, on every side
                expected = json.loads(json.dumps(calls[-1][1]))
                assert (await _online_with(other, "fuzz")).get_attribute("last") == expected
