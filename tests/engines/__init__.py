"""Real engines started by the tests (a throw-away PostgreSQL server, ...)."""
