"""Importing this module registers every workflow and step with DBOS."""

from amplitude_dsr.dsr import access, deletion, finish, jobwatch, submission, tracking
from amplitude_dsr.dsr.access import access_workflow
from amplitude_dsr.dsr.deletion import deletion_workflow

__all__ = [
    "access", "access_workflow", "deletion", "deletion_workflow", "finish", "jobwatch", "submission", "tracking",
]  # fmt: skip
