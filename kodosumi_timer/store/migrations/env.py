"""Alembic environment: run by kodosumi_timer.store.migrate with a connection at hand."""

from alembic import context

from kodosumi_timer.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="schedule_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
