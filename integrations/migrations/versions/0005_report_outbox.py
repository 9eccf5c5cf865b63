"""The report outbox: a finished report's Slack writes are stored before they are made.

- `triage_runs.outbox_json`: the thread messages, the final card and the ticket state to record
  (`triage.store.Outbox`), while the run is "stored, not yet posted"; NULL otherwise.
- `triage_runs.outbox_sent`: how many of those messages are posted.

A replica that dies between storing the report and posting it leaves a running run with an outbox;
the replica that takes it over (a higher fencing token) posts what is left instead of triaging again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triage_runs") as batch:
        batch.add_column(sa.Column("outbox_json", sa.Text, nullable=True))
        batch.add_column(sa.Column("outbox_sent", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("triage_runs") as batch:
        batch.drop_column("outbox_sent")
        batch.drop_column("outbox_json")
