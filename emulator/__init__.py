"""localmesh's room emulator: a local MeshAgent room server the real SDK accepts."""

from localmesh.emulator.server import RoomServer

__all__ = ["RoomServer"]
