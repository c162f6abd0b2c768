"""tickets, notes, links, timeline events; the ticket search index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:50:00.000000

The search index is dialect-specific and not a model: on SQLite an FTS5 table
`ticket_search` (rowid = ticket id), on PostgreSQL a table `ticket_search(ticket_id,
document tsvector)` with a GIN index. Triggers on `tickets` and `ticket_notes` keep one
document per ticket (key, title, description, resolution, notes, alarm payload) in step with
every write, whoever makes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dutydesk.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Re-index one ticket (TARGET: the trigger's NEW.id, NEW.ticket_id or OLD.ticket_id).
_SQLITE_REFRESH = """
    DELETE FROM ticket_search WHERE rowid = TARGET;
    INSERT INTO ticket_search (rowid, key, title, description, resolution, notes, payload)
    SELECT id, 'DD-' || id, title, description, coalesce(resolution, ''),
           coalesce((SELECT group_concat(body, char(10)) FROM ticket_notes
                     WHERE ticket_id = tickets.id), ''),
           coalesce(payload, '')
    FROM tickets WHERE id = TARGET;
"""
SQLITE_UPGRADE = [
    "CREATE VIRTUAL TABLE ticket_search USING fts5("
    "key, title, description, resolution, notes, payload, tokenize = 'porter unicode61')",
    "CREATE TRIGGER ticket_search_ticket_insert AFTER INSERT ON tickets BEGIN"
    + _SQLITE_REFRESH.replace("TARGET", "NEW.id")
    + "END",
    "CREATE TRIGGER ticket_search_ticket_update "
    "AFTER UPDATE OF title, description, resolution, payload ON tickets BEGIN"
    + _SQLITE_REFRESH.replace("TARGET", "NEW.id")
    + "END",
    "CREATE TRIGGER ticket_search_ticket_delete AFTER DELETE ON tickets BEGIN "
    "DELETE FROM ticket_search WHERE rowid = OLD.id; END",
    "CREATE TRIGGER ticket_search_note_insert AFTER INSERT ON ticket_notes BEGIN"
    + _SQLITE_REFRESH.replace("TARGET", "NEW.ticket_id")
    + "END",
    "CREATE TRIGGER ticket_search_note_update AFTER UPDATE OF body ON ticket_notes BEGIN"
    + _SQLITE_REFRESH.replace("TARGET", "NEW.ticket_id")
    + "END",
    "CREATE TRIGGER ticket_search_note_delete AFTER DELETE ON ticket_notes BEGIN"
    + _SQLITE_REFRESH.replace("TARGET", "OLD.ticket_id")
    + "END",
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS ticket_search_note_delete",
    "DROP TRIGGER IF EXISTS ticket_search_note_update",
    "DROP TRIGGER IF EXISTS ticket_search_note_insert",
    "DROP TRIGGER IF EXISTS ticket_search_ticket_delete",
    "DROP TRIGGER IF EXISTS ticket_search_ticket_update",
    "DROP TRIGGER IF EXISTS ticket_search_ticket_insert",
    "DROP TABLE IF EXISTS ticket_search",
]

POSTGRES_UPGRADE = [
    "CREATE TABLE ticket_search ("
    " ticket_id integer PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,"
    " document tsvector NOT NULL)",
    "CREATE INDEX ix_ticket_search_document ON ticket_search USING gin (document)",
    """
    CREATE FUNCTION ticket_search_refresh(target integer) RETURNS void
    LANGUAGE sql AS $$
      DELETE FROM ticket_search WHERE ticket_id = target;
      INSERT INTO ticket_search (ticket_id, document)
      SELECT t.id,
             -- the key as two words: the parser would read "DD-3" as "dd" and "-3"
             setweight(to_tsvector('english', 'DD ' || t.id || ' ' || t.title), 'A')
             || to_tsvector('english', concat_ws(' ', t.description, t.resolution,
                  (SELECT string_agg(n.body, E'\\n' ORDER BY n.id)
                   FROM ticket_notes n WHERE n.ticket_id = t.id),
                  t.payload::text))
      FROM tickets t WHERE t.id = target;
    $$
    """,
    """
    CREATE FUNCTION ticket_search_on_ticket() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM ticket_search_refresh(NEW.id);
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ticket_search_on_note() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        PERFORM ticket_search_refresh(OLD.ticket_id);
      ELSE
        PERFORM ticket_search_refresh(NEW.ticket_id);
      END IF;
      RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER ticket_search_ticket_insert AFTER INSERT ON tickets "
    "FOR EACH ROW EXECUTE FUNCTION ticket_search_on_ticket()",
    "CREATE TRIGGER ticket_search_ticket_update "
    "AFTER UPDATE OF title, description, resolution, payload ON tickets "
    "FOR EACH ROW EXECUTE FUNCTION ticket_search_on_ticket()",
    "CREATE TRIGGER ticket_search_note_change AFTER INSERT OR UPDATE OF body OR DELETE "
    "ON ticket_notes FOR EACH ROW EXECUTE FUNCTION ticket_search_on_note()",
]
POSTGRES_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS ticket_search_note_change ON ticket_notes",
    "DROP TRIGGER IF EXISTS ticket_search_ticket_update ON tickets",
    "DROP TRIGGER IF EXISTS ticket_search_ticket_insert ON tickets",
    "DROP FUNCTION IF EXISTS ticket_search_on_note()",
    "DROP FUNCTION IF EXISTS ticket_search_on_ticket()",
    "DROP FUNCTION IF EXISTS ticket_search_refresh(integer)",
    "DROP TABLE IF EXISTS ticket_search",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("first_seen_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("seen_before_id", sa.Integer(), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("acknowledged_at", dutydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("closed_at", dutydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["users.id"],
            name=op.f("fk_tickets_assignee_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["seen_before_id"],
            ["tickets.id"],
            name=op.f("fk_tickets_seen_before_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_closed_at", ["closed_at"], unique=False)
        batch_op.create_index("ix_tickets_first_seen_at", ["first_seen_at"], unique=False)
        batch_op.create_index("ix_tickets_source", ["source"], unique=False)
        batch_op.create_index("ix_tickets_status_assignee", ["status", "assignee_id"], unique=False)
        batch_op.create_index(
            "uq_tickets_open_fingerprint",
            ["fingerprint"],
            unique=True,
            sqlite_where=sa.text("status != 'closed'"),
            postgresql_where=sa.text("status != 'closed'"),
        )

    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_events_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_events")),
    )
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_events_kind_at", ["kind", "at"], unique=False)
        batch_op.create_index("ix_ticket_events_ticket_id_at", ["ticket_id", "at"], unique=False)

    op.create_table(
        "ticket_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_links_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_links")),
    )
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_links_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "ticket_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_notes_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_notes")),
    )
    with op.batch_alter_table("ticket_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_notes_ticket_id"), ["ticket_id"], unique=False)

    _run(SQLITE_UPGRADE if op.get_bind().dialect.name == "sqlite" else POSTGRES_UPGRADE)


def downgrade() -> None:
    _run(SQLITE_DOWNGRADE if op.get_bind().dialect.name == "sqlite" else POSTGRES_DOWNGRADE)
    with op.batch_alter_table("ticket_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_notes_ticket_id"))
    op.drop_table("ticket_notes")
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_links_ticket_id"))
    op.drop_table("ticket_links")
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_events_ticket_id_at")
        batch_op.drop_index("ix_ticket_events_kind_at")
    op.drop_table("ticket_events")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("uq_tickets_open_fingerprint")
        batch_op.drop_index("ix_tickets_status_assignee")
        batch_op.drop_index("ix_tickets_source")
        batch_op.drop_index("ix_tickets_first_seen_at")
        batch_op.drop_index("ix_tickets_closed_at")
    op.drop_table("tickets")
