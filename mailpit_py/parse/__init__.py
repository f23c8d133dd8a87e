"""Parsing raw mail into the stored record's parts (MIME, headers, bodies, warnings)."""
