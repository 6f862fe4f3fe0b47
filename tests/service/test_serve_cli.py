"""`serve` and `tokens` on the command line: one-line errors with the contract's exit codes."""

from __future__ import annotations

import json
import socket
from typing import Any

from .conftest import cli


def test_start_up_errors_are_one_line(service_env: dict[str, str], start_service: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = cli(service_env, "serve", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"

    done = cli(service_env, "serve", "--public-url", "ftp://dsr.example.com")
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)

    start_service()  # holds the executor lock of this database
    done = cli(service_env, "serve", "--port", "0")
    assert done.returncode == 2
    assert "another process is already running workflows" in done.stderr
    assert "Traceback" not in done.stderr


def test_tokens_commands(service_env: dict[str, str]) -> None:
    created = cli(service_env, "tokens", "create", "--name", "acme", "--scope", "read")
    assert created.returncode == 0
    token = created.stdout.strip()
    assert token.startswith("adsr_")
    assert token not in created.stderr
    listed = json.loads(cli(service_env, "tokens", "list", "--json").stdout)["tokens"]
    assert [(t["name"], t["scopes"], t["revoked_at"]) for t in listed] == [("acme", ["read"], None)]
    assert token.split("_", 2)[2] not in json.dumps(listed)
    for args, code, line in [
        (["tokens", "create", "--name", "acme", "--scope", "write"], 2, "error: unknown scope 'write'"),
        (["tokens", "create", "--name", "a b", "--scope", "read"], 2, "error: a token name is"),
        (["tokens", "revoke", "nope"], 2, "error: malformed token ID"),
        (["tokens", "revoke", "0" * 16], 1, f"error: no active token {'0' * 16}"),
    ]:
        done = cli(service_env, *args)
        assert done.returncode == code, (args, done.stderr)
        assert done.stderr.startswith(line), (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
    assert cli(service_env, "tokens", "revoke", listed[0]["id"]).returncode == 0
    assert cli(service_env, "tokens", "revoke", listed[0]["id"]).returncode == 1
