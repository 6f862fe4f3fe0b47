"""dsr layer."""
