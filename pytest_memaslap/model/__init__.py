"""Pure descriptions: the workload, units, keyspace, metric names, thresholds, memaslap -F files.

Nothing here does I/O or knows of pytest, asyncio or a server; every layer above reads these.
"""
