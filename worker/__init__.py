"""localmesh's Worker SDK: queue-driven agents against a MeshAgent room."""
