"""`gateway demo`: a realistic sample in the database and a live job a minute after start.

The sample (`data/`, written by `scripts/make_demo_data.py`) is committed through the
worker plane's own results path (`ResultService.submit`, the function behind
`POST /internal/results`), one leased task per scrape, so history, current rows, the
done-task records and the hooks (jobs, parcel watches) are exactly what real workers
would have left. Seeding skips the scrapes the history already holds, so running the
demo twice writes nothing twice.
"""
