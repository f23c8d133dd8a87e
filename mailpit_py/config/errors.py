"""ConfigError: the one error a bad setting raises, importable by every layer."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and how to fix it."""
