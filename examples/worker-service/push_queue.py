# The MeshAgent docs' push_queue.py: send one task to the worker's queue. It uses the real
# MeshAgent SDK (0.56.0), pointed at localmesh by `eval "$(localmesh env)"`.
import asyncio
import os

from meshagent.api import ApiScope, ParticipantToken, RoomClient, WebSocketClientProtocol
from meshagent.api.helpers import websocket_room_url

ROOM = os.getenv("MESHAGENT_ROOM", "quickstart")


async def main():
    token = ParticipantToken(name="sender")
    token.add_room_grant(ROOM)
    token.add_api_grant(ApiScope.agent_default())
    jwt = token.to_jwt(api_key=os.environ["MESHAGENT_API_KEY"])

    protocol = WebSocketClientProtocol(url=websocket_room_url(room_name=ROOM), token=jwt)
    async with RoomClient(protocol_factory=protocol.create_factory()) as room:
        await room.queues.send(
            name="worker-queue",
            message={"prompt": "Write a short poem about AI and save it to poem.txt"},
        )
        print(f"sent a task to worker-queue in room {ROOM}")


asyncio.run(main())
