"""The run: workers drive engines, executors place them, the committer records what they made."""
