"""mailpit_py: a local-development mail catcher with a Mailpit-compatible API."""

__version__ = "0.1.0"
