"""SQL of client jobs (tables in `tables.py`, migration `jobs_0001`)."""
