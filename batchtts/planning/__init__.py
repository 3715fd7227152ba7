"""Chunks to work: the prepared job file, batches or a queue under the memory budget, the scheduler."""
