"""The task ledger: the record of every task this server knows of.

`records` holds what a row is and the protocol a ledger implements (its writes are named after
events, every row has an owner, leases say which replica follows a task); `sqlite` is the
one-machine implementation and `postgres` the one replicas share (the `postgres` extra, so it
is not imported here), both over the SQL of `sql_reads` and `sql_writes`.
`open_ledger(settings)` opens the one the settings name. A task id returned by PiAPI is written
here before anything else happens with it. docs/LEDGER.md.
"""

from hailuo_mcp.ledger.factory import open_ledger
from hailuo_mcp.ledger.records import LOCAL_OWNER, ProtocolTaskRecord, TaskLedger, TaskRecord
from hailuo_mcp.ledger.sqlite import SqliteLedger, open_ledger_sync

__all__ = [
    "LOCAL_OWNER",
    "ProtocolTaskRecord",
    "SqliteLedger",
    "TaskLedger",
    "TaskRecord",
    "open_ledger",
    "open_ledger_sync",
]
