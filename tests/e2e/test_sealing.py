"""Sealed checkpoints: nothing DBOS stores names the data subject in clear, and every process of a
database must hold its data key (a process with another key is refused before it writes)."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dbos._serialization import DefaultSerializer
from pydantic import SecretStr

from amplitude_dsr.config import normalize_database_url
from amplitude_dsr.dsr import api, sealing
from amplitude_dsr.dsr.executor import open_runtime
from amplitude_dsr.dsr.model import Identifier
from amplitude_dsr.dsr.runtime import Runtime
from amplitude_dsr.emulator.server import EmulatorServer
from amplitude_dsr.errors import ConfigError, SealedDataUnreadable
from amplitude_dsr.store import repo

from .conftest import api_calls, settings_for

OURS = ("dsr_", "amplitude_budget_")


def dbos_values(db_url: str) -> list[tuple[str, str, str | None]]:
    """(table, serialized value, serialization) of every value DBOS stored in its tables."""
    engine = sa.create_engine(normalize_database_url(db_url))
    schema = None if db_url.startswith("sqlite") else "dbos"
    found: list[tuple[str, str, str | None]] = []
    try:
        inspector = sa.inspect(engine)
        with engine.connect() as conn:
            for table in inspector.get_table_names(schema=schema):
                if table.startswith(OURS):
                    continue
                columns = {c["name"] for c in inspector.get_columns(table, schema=schema)}
                for column in ("inputs", "output", "value", "message", "error"):
                    if column not in columns:
                        continue
                    kind = "serialization" if "serialization" in columns else None
                    where = f'"{schema}"."{table}"' if schema else f'"{table}"'
                    select = f'SELECT "{column}"' + (f', "{kind}"' if kind else ", NULL") + f" FROM {where}"
                    for value, how in conn.exec_driver_sql(select):
                        if value is not None:
                            found.append((table, str(value), how))
    finally:
        engine.dispose()
    return found


def decoded(value: str) -> bytes:
    """The bytes a reader of the database gets from a value (DBOS's default is base64 pickle)."""
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return value.encode()


def test_checkpoints_of_a_request_name_nobody_in_clear(
    make_runtime: Callable[..., Runtime], emulator: EmulatorServer, catalog: dict[str, Any], db_url: str, tmp_path: Path
) -> None:
    user = catalog["web"]["ordinary"][0]
    rt = make_runtime()
    rid, _ = api.submit(rt, "access", [Identifier.parse("email", user["user_id"])], options={"out_dir": str(tmp_path)})
    assert api.wait(rt, rid, timeout=120) == "completed"
    assert api_calls(emulator, "/useractivity")  # Amplitude's answers went through checkpoints
    values = dbos_values(db_url)
    assert any(t == "operation_outputs" for t, _, _ in values)
    secrets_ = [user["user_id"].encode(), str(user["amplitude_id"]).encode(), user["device_ids"][0].encode()]
    for table, value, how in values:
        assert how in (None, sealing.SERIALIZATION), (table, how)
        raw = decoded(value) + value.encode()
        assert not any(s in raw for s in secrets_), table


def test_a_process_with_another_data_key_is_refused_and_a_rotation_is_accepted(
    emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    first, second = sealing.new_key(), sealing.new_key()

    def opened(key: str) -> Runtime:
        settings = settings_for(emulator, db_url, data_key=SecretStr(key))
        return open_runtime(settings, role="submitter", data_dir=tmp_path / "data")

    opened(first).close()
    with pytest.raises(ConfigError, match="AMPLITUDE_DSR_DATA_KEY: this database's checkpoints are sealed") as info:
        opened(second)
    assert first not in str(info.value) and second not in str(info.value)
    opened(f"{second},{first}").close()  # rotation: the new key first, the old one still reads
    with pytest.raises(ConfigError, match="sealed with another data key"):
        opened(first)  # the database moved to the new key
    opened(second).close()


def test_without_a_configured_key_one_is_generated_privately_and_shared(
    emulator: EmulatorServer, db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the generated key of a PostgreSQL database lives in the user's data directory")
    settings = settings_for(emulator, db_url)
    rt = open_runtime(settings, role="submitter", data_dir=tmp_path / "data")
    rt.close()
    key_file = sealing.key_file(db_url)
    assert key_file.parent == Path(db_url.removeprefix("sqlite:///")).parent
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = key_file.read_text().strip()
    assert sealing.data_keys(settings) == ([key.encode()], str(key_file))
    # a second process of the same database reads the same key and is accepted
    rt = open_runtime(settings, role="submitter", data_dir=tmp_path / "data")
    rt.close()
    with pytest.raises(ConfigError, match="sealed with another data key"):
        open_runtime(settings_for(emulator, db_url, data_key=SecretStr(sealing.new_key())), role="submitter")


def test_checkpoints_written_before_sealing_stay_readable(
    make_runtime: Callable[..., Runtime],
    catalog: dict[str, Any],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request stored and half-run by a version without sealing (DBOS's own ``py_pickle``) is
    finished by this one: DBOS picks the deserializer by the name stored beside each value."""
    user = catalog["web"]["ordinary"][1]
    with monkeypatch.context() as patch:
        patch.setattr(sealing, "SealedSerializer", lambda keys: DefaultSerializer())
        old = make_runtime(role="submitter")  # submits only: the workflow waits for an executor
        rid, _ = api.submit(
            old, "access", [Identifier.parse("user_id", user["user_id"])], options={"out_dir": str(tmp_path)}
        )
        old.close()
    assert sealing.SERIALIZATION not in {how for _, _, how in dbos_values(db_url)}
    rt = make_runtime()
    assert api.wait(rt, rid, timeout=120) == "completed"
    assert repo.get_request(rt.engine, rid).status == "completed"
    assert sealing.SERIALIZATION in {how for _, _, how in dbos_values(db_url)}


def test_a_requests_identifiers_and_resolution_are_encrypted_in_our_tables(
    make_runtime: Callable[..., Runtime], emulator: EmulatorServer, catalog: dict[str, Any], db_url: str
) -> None:
    user = catalog["web"]["ordinary"][3]
    rt = make_runtime()
    rid, _ = api.submit(rt, "deletion", [Identifier.parse("email", user["user_id"])])
    assert api.wait(rt, rid, timeout=300) == "verified"
    row = repo.get_request(rt.engine, rid)  # the runtime's engine carries the key: read in clear
    assert row.identifiers == [{"kind": "email", "value": user["user_id"]}]
    assert row.result and "resolution" in row.result
    plain = sa.create_engine(normalize_database_url(db_url))  # a copy of the database, without the key
    try:
        with plain.connect() as conn:
            raw = conn.exec_driver_sql("SELECT identifiers, result FROM dsr_requests").all()
        assert raw
        for value in (v for r in raw for v in r):
            assert user["user_id"] not in str(value) and "sealed" in str(value)
        with pytest.raises(SealedDataUnreadable):
            repo.get_request(plain, rid)
    finally:
        plain.dispose()
