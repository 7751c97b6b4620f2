"""The WeCom test fixtures (a migrated SQLite database, the sandbox as WeCom) for the ops tests."""
from tests.wecom.conftest import connector, database, db_url, env, migrated_template  # noqa: F401
