"""Check metadata and texts (data files)."""
