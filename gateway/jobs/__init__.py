"""Client jobs: on-demand refresh of parcels and parties, carried out by the worker plane."""
