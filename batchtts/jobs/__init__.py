"""The job file: what a job is (types), its text (text), and reading and validating the JSONL (parse)."""
