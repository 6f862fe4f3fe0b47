"""amplitude-dsr: answer GDPR/CCPA access and deletion requests against Amplitude Analytics."""

from amplitude_dsr.config import Settings, load_settings
from amplitude_dsr.errors import DsrError

__all__ = ["DsrError", "Settings", "__version__", "load_settings"]

__version__ = "0.1.0"
