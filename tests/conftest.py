"""Test-wide settings: hypothesis runs derandomized on CI so a red build is reproducible."""

import os

from hypothesis import settings

#: The throw-away PostgreSQL server's fixtures (postgres_url, postgres_db, store_url).
pytest_plugins = ["tests.engines.postgres"]

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
