"""amplitude layer."""
