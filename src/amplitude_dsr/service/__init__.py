"""The HTTP service: the OpenDSR 2.0 processor API, bearer tokens, signed status callbacks and
health checks (``docs/service.md``). A thin shell: requests go through ``dsr.api``."""

from __future__ import annotations

from amplitude_dsr.service.app import create_app
from amplitude_dsr.service.callbacks import DeliveryLoop
from amplitude_dsr.service.context import Service, ServiceConfig
from amplitude_dsr.service.links import ResultsLinks
from amplitude_dsr.service.signing import Signer, load_or_create, verify
from amplitude_dsr.service.worker import EmbeddedWorker

__all__ = [
    "DeliveryLoop",
    "EmbeddedWorker",
    "ResultsLinks",
    "Service",
    "ServiceConfig",
    "Signer",
    "create_app",
    "load_or_create",
    "verify",
]
