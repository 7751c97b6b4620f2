"""The WeCom test fixtures (the sandbox as WeCom, the connector) for the ops tests; the migrated
SQLite database comes from tests/conftest.py."""

from tests.wecom.conftest import connector, database, env  # noqa: F401
