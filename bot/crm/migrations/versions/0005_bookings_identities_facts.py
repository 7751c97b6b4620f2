"""Real bookings and identities: bookings keyed by (property, confirmation no) with channel,
amount, notes, source version and content hash; guests' phone blind index; several identities
per profile; identity-linking attempts; the profile facts derived from bookings.
Models: bot.crm.models (Booking, Guest.phone_index, GuestIdentity, IdentityLinkAttempt,
GuestFacts); services: bot.bookings.

Revision ID: 0005_bookings_identities
Revises: 0004_feedback
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0005_bookings_identities"
down_revision = "0004_feedback"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _backfill_phone_index() -> None:
    """Existing guests' phones are encrypted: decrypt each once to compute its index. A key
    that cannot decrypt leaves the index empty (the guest is then matched by nothing new)."""
    from bot.bookings.phone import phone_index
    from bot.crm.crypto import CRMKeyError, decrypt

    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, phone FROM guests WHERE phone IS NOT NULL")).fetchall()
    for gid, token in rows:
        try:
            index = phone_index(decrypt(token))
        except CRMKeyError:
            continue
        if index:
            conn.execute(
                sa.text("UPDATE guests SET phone_index = :i WHERE id = :id"),
                {"i": index, "id": gid},
            )


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_constraint("uq_bookings_confirmation_no", type_="unique")
        batch.add_column(sa.Column("channel", sa.String(32)))
        batch.add_column(sa.Column("amount", sa.Numeric(14, 2)))
        batch.add_column(sa.Column("notes", sa.Text()))  # Fernet token (EncryptedText)
        batch.add_column(sa.Column("source", sa.String(32)))
        batch.add_column(sa.Column("source_version", sa.String(64)))
        batch.add_column(sa.Column("content_hash", sa.String(64)))
        batch.create_unique_constraint(
            "uq_bookings_property_id_confirmation_no", ["property_id", "confirmation_no"]
        )
    with op.batch_alter_table("guests") as batch:
        batch.add_column(sa.Column("phone_index", sa.String(48)))
        batch.create_index("ix_guests_phone_index", ["phone_index"])
    _backfill_phone_index()

    op.create_table(
        "guest_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("source", sa.String(64)),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_guest_identities"),
        sa.ForeignKeyConstraint(
            ["guest_id"],
            ["guests.id"],
            ondelete="CASCADE",
            name="fk_guest_identities_guest_id_guests",
        ),
        sa.UniqueConstraint("kind", "value", name="uq_guest_identities_kind_value"),
    )
    op.create_index("ix_guest_identities_guest_id", "guest_identities", ["guest_id"])

    op.create_table(
        "identity_link_attempts",
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        _ts("locked_until", nullable=True),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("sender_id", name="pk_identity_link_attempts"),
    )

    op.create_table(
        "guest_facts",
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("stays", sa.Integer(), nullable=False),
        sa.Column("nights", sa.Integer(), nullable=False),
        sa.Column("total_spend", sa.Numeric(14, 2), nullable=False),
        sa.Column("spend_12m", sa.Numeric(14, 2), nullable=False),
        sa.Column("first_stay", sa.Date()),
        sa.Column("last_stay", sa.Date()),
        sa.Column("next_stay", sa.Date()),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("birthday", sa.Date()),
        sa.Column("tier", sa.String(8)),
        sa.Column("channel", sa.String(32)),
        sa.Column("channels", sa.JSON()),
        sa.Column("properties", sa.JSON()),
        sa.Column("as_of", sa.Date(), nullable=False),
        _ts("computed_at"),
        sa.PrimaryKeyConstraint("guest_id", name="pk_guest_facts"),
        sa.ForeignKeyConstraint(
            ["guest_id"], ["guests.id"], ondelete="CASCADE", name="fk_guest_facts_guest_id_guests"
        ),
    )


def downgrade() -> None:
    op.drop_table("guest_facts")
    op.drop_table("identity_link_attempts")
    op.drop_index("ix_guest_identities_guest_id", table_name="guest_identities")
    op.drop_table("guest_identities")
    with op.batch_alter_table("guests") as batch:
        batch.drop_index("ix_guests_phone_index")
        batch.drop_column("phone_index")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_constraint("uq_bookings_property_id_confirmation_no", type_="unique")
        for name in ("content_hash", "source_version", "source", "notes", "amount", "channel"):
            batch.drop_column(name)
        batch.create_unique_constraint("uq_bookings_confirmation_no", ["confirmation_no"])
