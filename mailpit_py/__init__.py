"""mailpit_py: a local-development mail catcher with a Mailpit-compatible API."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy, so `import mailpit_py` stays cheap (the client pulls in no server code anyway).
    if name in ("Client", "ClientError", "Message"):
        from mailpit_py import client

        return getattr(client, name)
    raise AttributeError(f"module 'mailpit_py' has no attribute {name!r}")
