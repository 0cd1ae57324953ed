"""The ``speicher`` command: a client of the daemon's REST API, plus ``speicher serve``."""
