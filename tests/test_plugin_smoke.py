async def test_plugin(localmesh_server, meshagent_room):
    localmesh_server.long_poll_window = 0.2
    async with meshagent_room("r") as room:
        await room.queues.send(name="q", message={"x": 1})
        assert await room.queues.receive(name="q") == {"x": 1}
        assert await room.queues.receive(name="q") is None
