"""Command-line tools on the same engine: ``memaslap-py`` and ``slap-compare``."""
