"""``tokens create|list|revoke``: the service's bearer tokens (``service/auth.py``).

``create`` prints the token once; only its SHA-256 is stored, so a lost token is revoked and a
new one created. The token's name is the OpenDSR ``controller_id`` of what it submits."""

from __future__ import annotations

import typer

from amplitude_dsr.cli import common
from amplitude_dsr.cli.common import JSON_OPT, guarded
from amplitude_dsr.cli.usage import OneLineErrors
from amplitude_dsr.errors import DomainError, UsageError
from amplitude_dsr.service import auth
from amplitude_dsr.store import service_repo
from amplitude_dsr.store.service_tables import create_service_tables

app = typer.Typer(
    name="tokens", cls=OneLineErrors, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Create, list and revoke the service's bearer tokens.",
)  # fmt: skip


@app.command(short_help="Create a token; it is printed once.")
def create(
    name: str = typer.Option(..., "--name", metavar="NAME", help="Who uses it (its OpenDSR controller_id)."),
    scope: list[str] = typer.Option(..., "--scope", metavar="SCOPE", help="submit, read or admin. Repeatable."),
    json_out: bool = JSON_OPT,
) -> None:
    """Create a bearer token with the given scopes and print it (it is not shown again)."""
    _create(name, scope, json_out)


@guarded
def _create(name: str, scopes: list[str], json_out: bool) -> None:
    auth.check_name(name)
    scopes = auth.check_scopes(scopes)
    with common.runtime("offline") as rt:
        create_service_tables(rt.engine)
        token_id, token = auth.create(rt.engine, name, scopes)
    if json_out:
        common.emit_json({"id": token_id, "name": name, "scopes": scopes, "token": token})
    else:
        common.err.print(f"token {token_id} ({name}: {' '.join(scopes)}); shown once, keep it secret:", markup=False)
        print(token)


@app.command("list", short_help="List tokens (never their secrets).")
def list_(json_out: bool = JSON_OPT) -> None:
    """List every token: ID, name, scopes, created, revoked."""
    _list(json_out)


@guarded
def _list(json_out: bool) -> None:
    with common.runtime("offline") as rt:
        create_service_tables(rt.engine)
        found = service_repo.list_tokens(rt.engine)
    rows = [
        {
            "id": t.id, "name": t.name, "scopes": sorted(t.scopes), "created_at": t.created_at.isoformat(),
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        }
        for t in found
    ]  # fmt: skip
    if json_out:
        common.emit_json({"tokens": rows})
        return
    if not rows:
        common.out.print("no tokens; create one with `amplitude-dsr tokens create --name NAME --scope submit`")
    for t in found:
        state = f"revoked {t.revoked_at.isoformat()}" if t.revoked_at else "active"
        line = f"{t.id}  {t.name}  {' '.join(sorted(t.scopes))}  created {t.created_at.isoformat()}  {state}"
        common.out.print(line, markup=False)


@app.command(short_help="Revoke a token at once.")
def revoke(
    token_id: str = typer.Argument(..., metavar="TOKEN_ID", help="The ID shown by `tokens list`."),
    json_out: bool = JSON_OPT,
) -> None:
    """Revoke a token: calls with it are refused (401) from now on."""
    _revoke(token_id, json_out)


@guarded
def _revoke(token_id: str, json_out: bool) -> None:
    if not (len(token_id) == 16 and all(c in "0123456789abcdef" for c in token_id)):
        raise UsageError("malformed token ID (16 hexadecimal characters, as `tokens list` shows)")
    with common.runtime("offline") as rt:
        create_service_tables(rt.engine)
        revoked = service_repo.revoke_token(rt.engine, token_id)
    if not revoked:
        raise DomainError(f"no active token {token_id}")
    if json_out:
        common.emit_json({"id": token_id, "revoked": True})
    else:
        common.out.print(f"token {token_id} revoked")
