"""Alembic migrations of the store, shipped inside the package so an installed triagebot can migrate.

`triagebot db upgrade` runs them (`integrations.schema_migrations`, a programmatic Alembic config; there
is no alembic.ini). A new revision is a new file in `versions/` (`revision`, `down_revision`,
`upgrade()`, `downgrade()` with `alembic.op`) plus the same change in `integrations/store_schema.py`;
tests/test_migrations.py fails while the two disagree.
"""
