"""``data-key``: print a new key for ``AMPLITUDE_DSR_DATA_KEY`` (see docs/operations.md,
"Personal data at rest"). It reads no configuration and writes nothing."""

from __future__ import annotations

from amplitude_dsr.cli import common
from amplitude_dsr.cli.common import JSON_OPT, guarded
from amplitude_dsr.dsr import api


@guarded
def data_key(json_out: bool = JSON_OPT) -> None:
    """Print a new data key. Give the same value to every process of a database (a PostgreSQL
    database shared by several machines needs it); to rotate, put the new key first:
    AMPLITUDE_DSR_DATA_KEY="NEW,OLD"."""
    common.State.json = json_out
    key = api.new_data_key()
    if json_out:
        common.emit_json({"data_key": key})
    else:
        print(key)
