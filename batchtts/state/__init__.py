"""What survives a kill: the output folder's layout, the ledger, the chunk store, the lock, atomic writes,
voice caches, the event log, signals."""
