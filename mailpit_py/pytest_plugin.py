"""pytest plugin (pytest11 entry point): the `mailpit` fixture, the `mailpit` marker and
`--mailpit-url`.

Imports of the server (flask, aiosmtpd) happen only when a test asks for the fixture, so a
suite that never uses it pays nothing. Each process (so each pytest-xdist worker) runs its own
server, once per session, and every test starts with an empty mailbox.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mailpit_py.client import Client, Message
    from mailpit_py.server import Server

FILTERS = ("subject", "from_", "to", "cc", "bcc", "recipient", "text", "html", "tag")


# pytest-mailpit's plugin (another project, entry point `mailpit`) defines the same options and a
# `mailpit` fixture of its own: with both installed pytest would stop at the clash, so ours blocks
# it (its client classes stay importable: this project's tests use one).
OTHER_PLUGIN = "mailpit"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.set_blocked(OTHER_PLUGIN)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mailpit", "mailpit_py mail catcher")
    try:
        group.addoption(
            "--mailpit-url",
            default=None,
            metavar="URL",
            help="use an already running mailpit_py or Mailpit (its HTTP URL, e.g. "
            "http://127.0.0.1:8025/, SMTP on port 1025 of the same host unless "
            "--mailpit-smtp says otherwise) instead of starting one",
        )
    except ValueError:
        pass  # pytest-mailpit, loaded before ours was and blocked since, defined it alike
    group.addoption(
        "--mailpit-smtp",
        default=None,
        metavar="HOST:PORT",
        help="the SMTP address of the instance given by --mailpit-url",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mailpit(**settings): give this test its own mailpit_py server with these Config "
        "settings, e.g. max_message_size=1000 or smtp_max_recipients=2, or the shorthands "
        "auth='user:pass', starttls=True, tls=True, chaos='Recipient:451:100', max_size=N",
    )


def _self_signed_files() -> tuple[str, str]:
    """A certificate for localhost and 127.0.0.1 and its key, as PEM files a client can trust."""
    import tempfile
    from pathlib import Path

    from mailpit_py.net.tls import self_signed

    cert, key = self_signed(["localhost", "127.0.0.1"])
    folder = Path(tempfile.mkdtemp(prefix="mailpit-py-tls-"))
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    return str(folder / "cert.pem"), str(folder / "key.pem")


def marker_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The marker's shorthands -> Config fields; any Config field may also be given as is.

    auth="user:pass ...": AUTH required with these users (over plain SMTP too, unless
    starttls/tls asks for encryption first); starttls=True: STARTTLS with a self-signed
    certificate, required before anything else; tls=True: implicit TLS (SMTPS);
    chaos="Sender:451:100,...": chaos triggers (with chaos_seed= for a fixed sequence);
    max_size=N: the size limit in bytes.
    """
    cfg = dict(settings)
    auth = cfg.pop("auth", None)
    starttls = bool(cfg.pop("starttls", False))
    tls = bool(cfg.pop("tls", False))
    chaos = cfg.pop("chaos", None)
    max_size = cfg.pop("max_size", None)
    if starttls or tls:
        if not cfg.get("smtp_tls_cert"):
            cfg["smtp_tls_cert"], cfg["smtp_tls_key"] = _self_signed_files()
        cfg.setdefault("smtp_require_tls" if tls else "smtp_require_starttls", True)
    if auth is not None:
        cfg.setdefault("smtp_auth", auth)
        if not (starttls or tls or cfg.get("smtp_tls_cert")):
            cfg.setdefault("smtp_auth_allow_insecure", True)
    if chaos is not None:
        cfg.setdefault("chaos_triggers", chaos)
    if max_size is not None:
        cfg.setdefault("max_message_size", int(max_size))
    return cfg


def _start_server(**settings: Any) -> Server:
    from mailpit_py.config.settings import Config
    from mailpit_py.server import Server

    cfg: dict[str, Any] = {
        "smtp_addr": "127.0.0.1:0",
        "http_addr": "127.0.0.1:0",
        "database": ":memory:",
        "max_messages": 0,
        "quiet": True,
    }
    cfg.update(marker_settings(settings))
    return Server(Config(**cfg)).start()  # Server validates it


def _matches(msg: Message, filters: dict[str, str]) -> bool:
    """Every filter is a case-insensitive substring of the field it names."""

    def has(haystack: Sequence[str], needle: str) -> bool:
        return any(needle.lower() in h.lower() for h in haystack)

    for key, want in filters.items():
        if key == "subject":
            ok = has([msg.subject], want)
        elif key == "from_":
            ok = has([str(msg.from_)], want)
        elif key in ("to", "cc", "bcc"):
            ok = has([str(a) for a in getattr(msg, key)], want)
        elif key == "recipient":
            ok = has(msg.recipients, want)
        elif key == "text":
            ok = has([msg.text], want)
        elif key == "html":
            ok = has([msg.html], want)
        else:  # tag
            ok = want in msg.tags
        if not ok:
            return False
    return True


def describe(msg: Message) -> str:
    """One readable line per message for failure reports."""
    return f"{msg.subject!r} from {msg.from_.address} to {', '.join(msg.recipients) or '-'}"


class Mailpit:
    """What the `mailpit` fixture gives a test: addresses, messages, waits and assertions."""

    def __init__(
        self, client: Client, smtp_address: tuple[str, int], server: Server | None = None
    ) -> None:
        self.client = client
        self.server = server  # None when attached with --mailpit-url
        self.smtp_host, self.smtp_port = smtp_address
        self.url = client.url
        # The server's TLS certificate (PEM file), for clients that verify: e.g.
        # ssl.create_default_context(cafile=mailpit.tls_cert), or SSL_CERT_FILE for a framework.
        cert = server.config.smtp_tls_cert if server is not None else ""
        self.tls_cert: str | None = cert if cert and not cert.startswith("sans:") else None
        self._cache: dict[str, Message] = {}

    def __repr__(self) -> str:
        return f"<mailpit smtp={self.smtp_host}:{self.smtp_port} url={self.url}>"

    @property
    def smtp_address(self) -> tuple[str, int]:
        return (self.smtp_host, self.smtp_port)

    def clear(self) -> None:
        """Delete every message."""
        if self.server is not None:
            mailbox = self.server.mailbox
            if mailbox is None:
                raise RuntimeError(
                    "the mailpit server has stopped: clear() works only while it runs"
                )
            mailbox.delete_all()
        else:
            self.client.delete()
        self._cache.clear()

    def _ids(self, query: str | None) -> list[str]:
        """IDs oldest first (the API lists newest first)."""
        ids: list[str] = []
        page = 500
        while True:
            if query:
                batch = self.client.search(query, start=len(ids), limit=page)
            else:
                batch = self.client.messages(start=len(ids), limit=page)
            ids.extend(m.id for m in batch)
            if len(batch) < page:
                return ids[::-1]

    def messages(self, query: str | None = None, **filters: str) -> list[Message]:
        """The messages received in this test, oldest first, optionally narrowed by a search
        query and substring filters (subject=, from_=, to=, cc=, bcc=, recipient=, text=,
        html=, tag=)."""
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise TypeError(f"unknown filter(s) {sorted(unknown)}; use {', '.join(FILTERS)}")
        found = []
        for msg_id in self._ids(query):
            if msg_id not in self._cache:
                self._cache[msg_id] = self.client.get(msg_id)
            found.append(self._cache[msg_id])
        return [m for m in found if _matches(m, filters)]

    def wait_for(
        self, count: int = 1, timeout: float = 5, query: str | None = None, **filters: str
    ) -> list[Message]:
        """Return the matching messages as soon as there are at least `count` of them; fail
        after `timeout` seconds listing what did arrive."""
        deadline = time.monotonic() + timeout
        sub = self.server.bus.subscribe() if self.server is not None else None
        pause = threading.Event()
        try:
            while True:
                found = self.messages(query, **filters)
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if sub is not None and not sub.dropped.is_set():
                    sub.get(timeout=left)  # woken by any mailbox event
                else:
                    pause.wait(min(0.05, left))  # remote: poll until the deadline
        finally:
            if sub is not None:
                sub.close()
        terms = [f"query={query!r}"] if query else []
        wanted = ", ".join(terms + [f"{k}={v!r}" for k, v in filters.items()])
        arrived = self.messages()
        lines = [f"  {describe(m)}" for m in arrived] or ["  (nothing)"]
        pytest.fail(
            f"timed out after {timeout}s waiting for {count} message(s)"
            + (f" matching {wanted}" if wanted else "")
            + f"; {len(found)} matched. {len(arrived)} arrived:\n"
            + "\n".join(lines),
            pytrace=False,
        )

    def assert_sent(
        self,
        subjects: Sequence[str] | None = None,
        recipients: Sequence[str] | None = None,
        count: int | None = None,
        timeout: float = 5,
    ) -> list[Message]:
        """Assert what was sent, in arrival order: exactly these subjects, exactly these
        envelope recipients (sorted, all messages together), or this many messages. Waits up to
        `timeout` for the expected number to arrive; on mismatch fails with a diff."""
        expect_n = count if count is not None else len(subjects) if subjects is not None else 1
        deadline = time.monotonic() + timeout
        sub = self.server.bus.subscribe() if self.server is not None else None
        pause = threading.Event()
        try:
            while True:
                got = self.messages()
                left = deadline - time.monotonic()
                if len(got) >= expect_n or left <= 0:
                    break
                if sub is not None and not sub.dropped.is_set():
                    sub.get(timeout=left)
                else:
                    pause.wait(min(0.05, left))
        finally:
            if sub is not None:
                sub.close()
        problems = []
        if count is not None and len(got) != count:
            problems.append(f"expected {count} message(s), got {len(got)}")
        if subjects is not None:
            problems += _diff("subjects", list(subjects), [m.subject for m in got])
        if recipients is not None:
            actual = sorted(r for m in got for r in m.recipients)
            problems += _diff("recipients", sorted(recipients), actual)
        if problems:
            listing = "\n".join(f"  {describe(m)}" for m in got) or "  (nothing)"
            pytest.fail("\n".join(problems) + "\nmessages received:\n" + listing, pytrace=False)
        return got

    def assert_subjects(self, *subjects: str, timeout: float = 5) -> list[Message]:
        """Exactly these subjects arrived, in this order."""
        return self.assert_sent(subjects=subjects, timeout=timeout)

    def assert_nothing_sent(self) -> None:
        got = self.messages()
        if got:
            listing = "\n".join(f"  {describe(m)}" for m in got)
            pytest.fail(f"expected no messages, got {len(got)}:\n{listing}", pytrace=False)


def _diff(what: str, expected: list[str], actual: list[str]) -> list[str]:
    if expected == actual:
        return []
    lines = difflib.unified_diff(
        [repr(s) for s in expected], [repr(s) for s in actual], "expected", "actual", lineterm=""
    )
    return [f"{what} differ (- expected, + actual):", *(f"  {line}" for line in lines)]


@pytest.fixture(scope="session")
def mailpit_server(request: pytest.FixtureRequest) -> Iterator[Server | None]:
    """The session's own server (one per process, so one per xdist worker); None when
    --mailpit-url attaches to a running instance."""
    if request.config.getoption("mailpit_url"):
        yield None
        return
    server = _start_server()
    try:
        yield server
    finally:
        server.stop()


def _remote(request: pytest.FixtureRequest, url: str) -> Mailpit:
    from urllib.parse import urlsplit

    from mailpit_py.client import Client

    smtp = request.config.getoption("mailpit_smtp")
    if smtp:
        host, _, port = smtp.rpartition(":")
    else:
        host, port = urlsplit(url).hostname or "127.0.0.1", "1025"
    return Mailpit(Client(url), (host, int(port)))


@pytest.fixture
def mailpit(request: pytest.FixtureRequest) -> Iterator[Mailpit]:
    """A mail catcher with an empty mailbox for this test."""
    from mailpit_py.client import Client

    marker = request.node.get_closest_marker("mailpit")
    url = request.config.getoption("mailpit_url")
    if marker is not None:
        if url:
            pytest.skip("@pytest.mark.mailpit needs its own server; not with --mailpit-url")
        own = _start_server(**marker.kwargs)
        try:
            yield Mailpit(Client(own.http_url), own.smtp_address, own)
        finally:
            own.stop()
        return
    if url:
        mp = _remote(request, url)
    else:
        server = request.getfixturevalue("mailpit_server")
        mp = Mailpit(Client(server.http_url), server.smtp_address, server)
    mp.clear()
    yield mp
