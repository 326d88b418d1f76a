"""What the server keeps for later stays bounded, whatever clients send it."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from harness import Figure, ServedRoom

from localmesh.protocol.wire import encode_message, pack


@pytest.mark.slow
async def test_100_llm_requests_of_10_mb(tmp_path):
    async with ServedRoom(tmp_path) as served:
        before = peak = served.rss()
        headers = {"authorization": f"Bearer {served.key.text}", "content-type": "application/json"}
        statuses = set()
        async with httpx.AsyncClient(timeout=60) as http:
            for i in range(100):
                body = json.dumps({"model": "m", "input": [
                    {"role": "user", "content": f"request {i}: " + "x" * (10 * 1000 * 1000)}]})
                answer = await http.post(served.url + "/openai/v1/responses", content=body, headers=headers)
                statuses.add(answer.status_code)
                if i % 10 == 0:
                    peak = max(peak, served.rss())
            transcript = (await http.get(served.url + "/_localmesh/llm/rooms/default/transcript",
                                         headers=headers)).json()
        after = served.rss()
    assert after < 300 and peak < 300, (before, peak, after)
    assert len(transcript["entries"]) == 100
    assert all("localmesh_not_kept" in e["request"] for e in transcript["entries"])
    Figure(case="100 LLM requests of 10 MB", abuser_got=f"HTTP {sorted(statuses)}; transcript keeps"
           " a note in place of each over-bound request", target="RSS < 300 MB",
           rss_before_mb=before, rss_peak_mb=peak, rss_after_mb=after).record()


@pytest.mark.slow
async def test_50_developer_logs_of_10_mb(tmp_path):
    async with ServedRoom(tmp_path) as served:
        before = peak = served.rss()
        url, token = served.room_url("r"), served.token("r", "logger")
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                      max_size=None) as ws:
            data = pack({"toolkit": "developer", "tool": "log", "arguments": {
                "type": "json", "json": {"type": "big", "data": {"blob": "y" * (10 * 1000 * 1000)}}}})
            for message_id in range(1, 51):
                for frame in encode_message(message_id, "room.invoke_tool", data):
                    await ws.send(frame)
                if message_id % 10 == 0:
                    peak = max(peak, served.rss())
            # the last one was answered: every log was taken
            async with asyncio.timeout(60):
                answered = 0
                while answered < 50:
                    frame = await ws.recv()
                    answered += frame[16:] == b"__response__"
        await asyncio.sleep(0.5)  # let the last buffers go back
        after = served.rss()
    assert after < 300 and peak < 300, (before, peak, after)
    Figure(case="50 developer.log calls of 10 MB", abuser_got="each acknowledged; the room keeps a"
           " note in place of each over-bound entry", target="RSS < 300 MB, bounded log",
           rss_before_mb=before, rss_peak_mb=peak, rss_after_mb=after).record()


@pytest.mark.slow
async def test_many_unfinished_messages_stay_within_the_shared_budget(tmp_path):
    # 40 connections, each 15 MiB into a 16 MiB message, then stalled: 600 MiB if kept.
    async with ServedRoom(tmp_path, "inbound_budget_bytes=67108864") as served:
        before = served.rss()
        sockets, refused = [], 0
        for i in range(40):
            ws = await websockets.connect(served.room_url("r"), max_size=None, additional_headers={
                "Authorization": f"Bearer {served.token('r', f'staller{i}')}"})
            sockets.append(ws)
            packets = 15 * 1024
            await ws.send((1).to_bytes(8, "big") + (0).to_bytes(4, "big")
                          + (16 * 1024).to_bytes(4, "big") + b"room.invoke_tool")
            chunk = bytes(1024)
            for index in range(1, packets + 1):
                await ws.send((1).to_bytes(8, "big") + index.to_bytes(4, "big") + chunk)
        peak = served.rss()
        for ws in sockets:
            try:
                async with asyncio.timeout(0.5):
                    while True:
                        frame = await ws.recv()
                        if frame[16:] == b"__response__":
                            refused += 1
                            break
            except TimeoutError:
                pass
            await ws.close()
        assert await served.healthz() == 200
        after = served.rss()
    assert peak - before < 64 + 16, (before, peak)  # the budget plus one message in flight
    assert refused >= 35
    Figure(case="40 connections each stalling 15 MiB into a 16 MiB message",
           abuser_got=f"{refused} of 40 refused with 1002 (over the 64 MiB inbound budget set here)",
           target="RSS bounded by inbound_budget_bytes",
           rss_before_mb=before, rss_peak_mb=peak, rss_after_mb=after).record()
