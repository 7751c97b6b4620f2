"""Alembic environment for the CRM schema, driven from code (`bot.crm.db.upgrade`), no alembic.ini.

`bot.crm.db.alembic_config(engine)` puts the engine in `config.attributes["engine"]`; without one
(e.g. the `alembic` command pointed at this folder) we build one from `sqlalchemy.url` or
DATABASE_URL. SQLite cannot ALTER most things, so migrations there run in batch mode
(copy-and-move tables); `op.batch_alter_table` is a plain ALTER on PostgreSQL.
"""

from __future__ import annotations

import importlib

from alembic import context

from bot.crm.db import make_engine
from bot.crm.models import Base, include_object

# Every module that declares tables on the shared `Base`: imported so autogenerate sees them all.
# Add yours here when you add tables (and a revision in versions/).
MODEL_MODULES = (
    "bot.crm.models",
    "bot.wecom.models",
    "bot.paging.models",
    "bot.training.models",
    "bot.marketing.models",
    "bot.events.models",
)

config = context.config
for _module in MODEL_MODULES:
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:  # a checkout without that package yet: its tables are
        if exc.name != _module:  # simply not compared; any other import error is real
            raise
target_metadata = Base.metadata


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        include_object=include_object,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """`--sql` mode: print the DDL instead of running it."""
    url = config.get_main_option("sqlalchemy.url")
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    owns_engine = engine is None
    if owns_engine:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    try:
        with engine.connect() as connection:
            _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
            with context.begin_transaction():
                context.run_migrations()
            if connection.in_transaction():  # 2.0-style connections do not autocommit
                connection.commit()
    finally:
        if owns_engine:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
