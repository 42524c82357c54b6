"""The task ledger: the record of every task this server knows of.

`records` holds what a row is and the protocol a ledger implements (its writes are named after
events); `sqlite` is the local implementation. A task id returned by PiAPI is written here
before anything else happens with it.
"""

from hailuo_mcp.ledger.records import ProtocolTaskRecord, TaskLedger, TaskRecord
from hailuo_mcp.ledger.sqlite import SqliteLedger, open_ledger_sync

__all__ = ["ProtocolTaskRecord", "SqliteLedger", "TaskLedger", "TaskRecord", "open_ledger_sync"]
