"""The HTTP service's own tables (SQLAlchemy Core), beside ``store/tables.py``'s.

* ``dsr_service_tokens``: bearer tokens of the API. Only the SHA-256 of each token's secret is
  kept; the token is shown once, when it is created.
* ``dsr_service_requests``: one row per request a platform sent (its ``channel``: ``opendsr``,
  keyed by the ``subject_request_id``; ``datagrail``, keyed by the ``webhook_request_id``): our
  request ID, the controller, the callback URLs, the digest of the request (a re-POST of the same
  ID must be the same request) and the last state whose callbacks were queued.
* ``dsr_callback_deliveries``: one row per (request, callback URL, state): the signed status body
  to POST, its attempts, when to try next, the last error and when it was delivered.

None of them holds an identifier of a data subject.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

SERVICE_METADATA = sa.MetaData()
SCHEMA_ATTEMPTS = 5

tokens = sa.Table(
    "dsr_service_tokens",
    SERVICE_METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("scopes", sa.String(100), nullable=False),  # space-separated: submit read admin
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

service_requests = sa.Table(
    "dsr_service_requests",
    SERVICE_METADATA,
    # the platform's ID of the request (OpenDSR subject_request_id, DataGrail webhook_request_id)
    sa.Column("subject_request_id", sa.String(36), primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False, server_default="opendsr"),
    sa.Column("request_id", sa.String(40), nullable=False, index=True),
    sa.Column("controller_id", sa.String(100), nullable=False),
    sa.Column("request_type", sa.String(16), nullable=False),  # access | portability | erasure
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("callback_urls", sa.JSON, nullable=False),
    sa.Column("received_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("api_version", sa.String(16), nullable=False),
    # our detailed status whose callbacks were queued last (NULL: none yet)
    sa.Column("notified_state", sa.String(32)),
    # that status was final: nothing more to announce, the callback loop skips the row
    sa.Column("notified_final", sa.Boolean, nullable=False, server_default=sa.false(), index=True),
)

deliveries = sa.Table(
    "dsr_callback_deliveries",
    SERVICE_METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject_request_id", sa.String(36), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False, server_default="opendsr"),  # how it is signed
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),  # our detailed status the body describes
    sa.Column("body", sa.Text, nullable=False),  # the exact JSON POSTed (and signed)
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), index=True),  # NULL: delivered or given up
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("gave_up_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("subject_request_id", "url", "state", name="uq_delivery_request_url_state"),
)


def create_service_tables(engine: sa.Engine) -> None:
    """Create the service's tables if missing (idempotent; a concurrent creator's race is retried
    as in ``repo.create_tables``)."""
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            SERVICE_METADATA.create_all(engine)
            return
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
