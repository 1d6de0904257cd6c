"""The run directory: experiment files, trial records, results, the search summary and storage."""
