"""Reports for the data subject and evidence for the regulator.

- :func:`write_access_package` writes ``export.json``, ``report.html``, ``events.csv`` and
  ``manifest.json`` for an access request (schema: ``docs/export-schema.md``).
- :func:`write_certificate` writes ``certificate.json``, ``certificate.html`` and
  ``manifest.json`` for a deletion request (schema: ``docs/certificate-schema.md``).

Both write atomically into ``out_dir/<request_id>/`` and stream, so memory stays constant in
the number of events.
"""

from amplitude_dsr.dsr.report._events import CSV_COLUMNS, EventsFileError, csv_safe
from amplitude_dsr.dsr.report._output import MANIFEST_SCHEMA, MANIFEST_VERSION
from amplitude_dsr.dsr.report.access import (
    EXPORT_SCHEMA,
    EXPORT_SCHEMA_VERSION,
    export_header,
    write_access_package,
)
from amplitude_dsr.dsr.report.certificate import (
    CERTIFICATE_SCHEMA,
    CERTIFICATE_SCHEMA_VERSION,
    certificate_json,
    write_certificate,
)

__all__ = [
    "CERTIFICATE_SCHEMA",
    "CERTIFICATE_SCHEMA_VERSION",
    "CSV_COLUMNS",
    "EXPORT_SCHEMA",
    "EXPORT_SCHEMA_VERSION",
    "MANIFEST_SCHEMA",
    "MANIFEST_VERSION",
    "EventsFileError",
    "certificate_json",
    "csv_safe",
    "export_header",
    "write_access_package",
    "write_certificate",
]
