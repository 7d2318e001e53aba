"""
The replication core: the store and its write log, a replica's roles, the
primary's write path, catch-up and snapshots, and the heartbeat line protocol.
"""
