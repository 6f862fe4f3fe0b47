"""An independent, stateful Amplitude emulator (imports nothing from the rest of amplitude_dsr).

Serve it with ``EmulatorServer`` (tests) or ``serve`` (command line); steer it with
``EmulatorAdmin``. The interface is specified in ``docs/emulator-contract.md``.
"""

from .admin_client import EmulatorAdmin
from .app import create_app
from .cli import serve
from .server import EmulatorServer
from .world import World

__all__ = ["EmulatorAdmin", "EmulatorServer", "World", "create_app", "serve"]
