"""Our own tables (SQLAlchemy Core). DBOS keeps its checkpoints in its own tables.

* ``dsr_requests``: one row per privacy request, its state and its final result.
* ``dsr_deletion_items``: one row per Amplitude ID to delete (per request and project), from
  queued to receipted; submissions pack many items into one POST.
* ``dsr_deletion_names``: one row per user ID submitted as it is (the direct path,
  ``docs/deletion.md``), sealed, until Amplitude's receipt names its Amplitude ID: then it becomes
  a deletion item and the user ID is cleared.
* ``dsr_deletion_batches``: one row per deletion POST. The row is written (``intent``) before the
  call and marked ``posting`` just before sending; the receipt is stored after it. A batch found in
  ``posting`` after a crash is reconciled by listing jobs, never re-posted.
* ``dsr_audit`` (``store.audit``): the append-only, hash-chained audit trail.
* ``dsr_meta``: facts about the database itself (the data key's fingerprint).
* ``dsr_identifier_digests``: the digest of each identifier of a request (``store/digests.py``),
  indexed, so the console finds a person's requests without scanning the audit trail.
"""

from __future__ import annotations

import sqlalchemy as sa

from amplitude_dsr.store.sealed import SealedJSON

METADATA = sa.MetaData()

requests = sa.Table(
    "dsr_requests",
    METADATA,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # access | deletion
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("regulation", sa.String(8), nullable=False, server_default="gdpr"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("idempotency_key", sa.String(64), unique=True),
    sa.Column("identifiers", SealedJSON, nullable=False),  # encrypted (store/sealed.py)
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("result", SealedJSON),  # encrypted: the resolution names the person
    sa.Column("out_dir", sa.Text),
    sa.Column("error", sa.Text),
    # when the retention period ended: identifiers replaced by digests, checkpoints deleted
    sa.Column("purged_at", sa.DateTime(timezone=True)),
)

deletion_items = sa.Table(
    "dsr_deletion_items",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(40), nullable=False, index=True),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("amplitude_id", sa.BigInteger, nullable=False),
    sa.Column("org_wide", sa.Boolean, nullable=False, server_default=sa.false()),
    # queued | batched | receipted | invalid | cancelled
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("batch_id", sa.String(40), index=True),
    sa.Column("job_day", sa.String(10)),
    sa.Column("job_status", sa.String(16)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("request_id", "project", "amplitude_id", name="uq_item_request_project_id"),
)

deletion_names = sa.Table(
    "dsr_deletion_names",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(40), nullable=False, index=True),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("user_id", SealedJSON),  # encrypted; cleared once settled (mapped, invalid, cancelled)
    sa.Column("digest", sa.String(80), nullable=False),  # identifier_digest: one entry per POST
    sa.Column("org_wide", sa.Boolean, nullable=False, server_default=sa.false()),
    # queued | batched | lookup | mapped | invalid | failed | cancelled
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("batch_id", sa.String(40), index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("request_id", "project", "digest", name="uq_name_request_project_digest"),
)

deletion_batches = sa.Table(
    "dsr_deletion_batches",
    METADATA,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("org_wide", sa.Boolean, nullable=False, server_default=sa.false()),
    # intent | posting | receipted | reconciled | failed
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("amplitude_ids", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("posted_at", sa.DateTime(timezone=True)),
    sa.Column("posted_by", sa.String(120)),  # "<executor id>:<process boot id>"
    sa.Column("receipt", sa.JSON),
    sa.Column("error", sa.Text),
)

# One row per project whose credentials Amplitude refuses while it holds (or may hold) our
# deletion jobs: its requests wait instead of failing until a call with the keys succeeds.
project_pauses = sa.Table(
    "dsr_project_pauses",
    METADATA,
    sa.Column("project", sa.String(100), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
)

# Facts about the database itself, one row each (``dsr/sealing.py``: the data key's fingerprint).
meta = sa.Table(
    "dsr_meta",
    METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per (identifier digest, request): ``sha256`` of ``kind:value`` as the ``received``
# audit entry records it, never the identifier itself (``store/digests.py``).
identifier_digests = sa.Table(
    "dsr_identifier_digests",
    METADATA,
    sa.Column("digest", sa.String(80), primary_key=True),  # "sha256:" and 64 hex digits
    sa.Column("request_id", sa.String(40), primary_key=True),
)
