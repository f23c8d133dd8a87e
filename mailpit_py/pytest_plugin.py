"""pytest plugin (pytest11 entry point): the `mailpit` and `mailpit_mailbox` fixtures, the
`mailpit` marker, `--mailpit-url` and `--mailpit-mailbox-per-test`.

Imports of the server (flask, aiosmtpd) happen only when a test asks for a fixture, so a
suite that never uses it pays nothing. By default each process (so each pytest-xdist worker)
runs its own server, once per session, and every test starts with an empty mailbox. With a
mailbox per test, one server serves every worker (the xdist controller runs it) and each test
gets a mailbox of its own on it, routed by a unique SMTP AUTH username and recipient domain.
"""

from __future__ import annotations

import contextlib
import difflib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mailpit_py.client import Client, Message, MessageSummary
    from mailpit_py.pytest_mailboxes import MailboxHost, SmtpSettings
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
    group.addoption(
        "--mailpit-mailbox-per-test",
        action="store_true",
        default=None,
        help="give every test using the `mailpit` fixture a mailbox of its own on one shared "
        "server (one for all xdist workers), instead of emptying one mailbox before each test; "
        "also the ini option mailpit_mailbox_per_test = true",
    )
    parser.addini(
        "mailpit_mailbox_per_test",
        type="bool",
        default=False,
        help="the `mailpit` fixture gives every test a mailbox of its own (as "
        "--mailpit-mailbox-per-test)",
    )


def per_test(config: pytest.Config) -> bool:
    """Whether the `mailpit` fixture gives each test its own mailbox."""
    flag = config.getoption("mailpit_mailbox_per_test")
    return bool(flag) if flag is not None else bool(config.getini("mailpit_mailbox_per_test"))


def pytest_configure(config: pytest.Config) -> None:
    smtp = config.getoption("mailpit_smtp")
    if smtp:
        host, _, port = smtp.rpartition(":")
        if not (host and port.isdigit() and 0 < int(port) < 65536):
            raise pytest.UsageError(
                f"--mailpit-smtp wants HOST:PORT, e.g. 127.0.0.1:1025: {smtp!r}"
            )
        if not config.getoption("mailpit_url"):
            raise pytest.UsageError(
                "--mailpit-smtp names the SMTP address of the server of --mailpit-url; "
                "without --mailpit-url the plugin starts its own server"
            )
    config.addinivalue_line(
        "markers",
        "mailpit(**settings): give this test its own mailpit_py server with these Config "
        "settings, e.g. max_message_size=1000 or smtp_max_recipients=2, or the shorthands "
        "auth='user:pass', starttls=True, tls=True, chaos='Recipient:451:100', max_size=N",
    )


SHORTHANDS = ("auth", "starttls", "tls", "chaos", "max_size")


def _self_signed_files(folder: str) -> tuple[str, str]:
    """A certificate for localhost and 127.0.0.1 and its key, as PEM files a client can trust,
    in `folder` (the caller removes it with the server)."""
    from pathlib import Path

    from mailpit_py.net.tls import self_signed

    cert, key = self_signed(["localhost", "127.0.0.1"])
    (Path(folder) / "cert.pem").write_bytes(cert)
    (Path(folder) / "key.pem").write_bytes(key)
    return str(Path(folder) / "cert.pem"), str(Path(folder) / "key.pem")


def marker_problem(settings: dict[str, Any]) -> str:
    """Why the marker's settings cannot make a server ("" when they can): a name that is
    neither a shorthand nor a Config field, with the nearest names it may have meant."""
    import dataclasses

    from mailpit_py.config.settings import Config

    known = [f.name for f in dataclasses.fields(Config)] + list(SHORTHANDS)
    for name in settings:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            return (
                f"@pytest.mark.mailpit: unknown setting {name!r}{hint}; it takes "
                f"{', '.join(SHORTHANDS)} and the Config fields (mailpit-py --help names "
                "their flags: --max-message-size is max_message_size)"
            )
    return ""


def marker_settings(settings: dict[str, Any], folder: str | None = None) -> dict[str, Any]:
    """The marker's shorthands -> Config fields; any Config field may also be given as is.

    auth="user:pass ...": AUTH required with these users (over plain SMTP too, unless
    starttls/tls asks for encryption first); starttls=True: STARTTLS with a self-signed
    certificate, required before anything else; tls=True: implicit TLS (SMTPS);
    chaos="Sender:451:100,...": chaos triggers (with chaos_seed= for a fixed sequence);
    max_size=N: the size limit in bytes. The self-signed certificate files starttls/tls
    make go in `folder` (a new temporary folder when None).
    """
    cfg = dict(settings)
    auth = cfg.pop("auth", None)
    starttls = bool(cfg.pop("starttls", False))
    tls = bool(cfg.pop("tls", False))
    chaos = cfg.pop("chaos", None)
    max_size = cfg.pop("max_size", None)
    if starttls or tls:
        if not cfg.get("smtp_tls_cert"):
            if folder is None:
                import tempfile

                folder = tempfile.mkdtemp(prefix="mailpit-py-tls-")
            cfg["smtp_tls_cert"], cfg["smtp_tls_key"] = _self_signed_files(folder)
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


def _start_server(folder: str | None = None, **settings: Any) -> Server:
    from mailpit_py.config.settings import Config
    from mailpit_py.server import Server

    cfg: dict[str, Any] = {
        "smtp_addr": "127.0.0.1:0",
        "http_addr": "127.0.0.1:0",
        "database": ":memory:",
        "max_messages": 0,
        "quiet": True,
    }
    cfg.update(marker_settings(settings, folder))
    return Server(Config(**cfg)).start()  # Server validates it


@contextlib.contextmanager
def _marked_server(settings: dict[str, Any]) -> Iterator[Server]:
    """The server of a test with @pytest.mark.mailpit(...): a bad setting fails the test with
    what is wrong, and the certificate files made for it go when it stops."""
    import tempfile

    problem = marker_problem(settings)
    if problem:
        pytest.fail(problem, pytrace=False)
    with tempfile.TemporaryDirectory(prefix="mailpit-py-tls-") as folder:
        try:
            server = _start_server(folder, **settings)
        except (TypeError, ValueError) as err:  # a ConfigError is a ValueError
            pytest.fail(f"@pytest.mark.mailpit: {err}", pytrace=False)
        try:
            yield server
        finally:
            server.stop()


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
    """What the `mailpit` fixture gives a test: addresses, messages, waits and assertions.

    With a mailbox of its own (`smtp` given), `client` is bound to `/mailbox/NAME/`, so every
    read sees only this test's mail, and `smtp_username`, `smtp_password` and `domain` say how
    the test's code reaches that mailbox.
    """

    def __init__(
        self,
        client: Client,
        smtp_address: tuple[str, int],
        server: Server | None = None,
        smtp: SmtpSettings | None = None,
        check_routing: bool = False,
    ) -> None:
        self.client = client
        self.server = server  # None when attached with --mailpit-url or run by the controller
        self.smtp_host, self.smtp_port = smtp_address
        self.url = client.url
        self.smtp = smtp
        self.mailbox = smtp.username if smtp else None
        self.smtp_username = smtp.username if smtp else None
        self.smtp_password = smtp.password if smtp else None
        self.domain = smtp.domain if smtp else None
        # On a server this plugin did not start, mail may land unrouted in the default
        # mailbox: failures then look there and say which flags the server lacks.
        self._check_routing = check_routing and smtp is not None
        # The server's TLS certificate (PEM file), for clients that verify: e.g.
        # ssl.create_default_context(cafile=mailpit.tls_cert), or SSL_CERT_FILE for a framework.
        cert = server.config.smtp_tls_cert if server is not None else ""
        self.tls_cert: str | None = cert if cert and not cert.startswith("sans:") else None
        self._cache: dict[str, Message] = {}

    def __repr__(self) -> str:
        box = f" mailbox={self.mailbox}" if self.mailbox else ""
        return f"<mailpit smtp={self.smtp_host}:{self.smtp_port} url={self.url}{box}>"

    def address(self, local: str = "user") -> str:
        """An address in this test's own mailbox (local@NAME.mailbox.test)."""
        if self.smtp is None:
            raise RuntimeError(
                "address() needs a mailbox per test: use the mailpit_mailbox fixture or "
                "--mailpit-mailbox-per-test"
            )
        return self.smtp.address(local)

    def _routing_hint(self, arrived: int = 0) -> str:
        """Why a test's mail may be missing from its own mailbox: on a server that does not
        route, where it went instead; when nothing arrived at all, how mail gets here."""
        if self.smtp is None:
            return ""
        from mailpit_py.pytest_mailboxes import misrouted

        hint = misrouted(self.client, self.smtp) if self._check_routing else ""
        if not hint and not arrived:
            hint = (
                f"nothing reached this test's mailbox {self.mailbox!r}: its mail gets there by "
                f"logging in to SMTP as mailpit.smtp_username ({self.smtp.username!r}, any "
                f"password) or by going to an address at mailpit.domain ({self.smtp.domain!r})"
            )
        return f"\n{hint}" if hint else ""

    @property
    def smtp_address(self) -> tuple[str, int]:
        return (self.smtp_host, self.smtp_port)

    def clear(self) -> None:
        """Delete every message (of this test's mailbox, when it has one)."""
        if self.mailbox is not None:
            from mailpit_py.client import ClientError

            try:
                self.client.delete()
            except ClientError as err:
                if err.status != 404:  # no mailbox yet: nothing to delete
                    raise
        elif self.server is not None:
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
        from mailpit_py.client import ClientError

        ids: list[str] = []
        page = 500
        while True:
            try:
                batch = self._page(query, len(ids), page)
            except ClientError as err:
                if err.status == 404 and self.mailbox is not None:
                    return []  # its mailbox is made on first use: nothing arrived yet
                raise
            ids.extend(m.id for m in batch)
            if len(batch) < page:
                return ids[::-1]

    def _page(self, query: str | None, start: int, page: int) -> list[MessageSummary]:
        if query:
            return self.client.search(query, start=start, limit=page)
        return self.client.messages(start=start, limit=page)

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
            + "\n".join(lines)
            + self._routing_hint(len(arrived)),
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
            pytest.fail(
                "\n".join(problems)
                + "\nmessages received:\n"
                + listing
                + (self._routing_hint(len(got)) if len(got) < expect_n else ""),
                pytrace=False,
            )
        return got

    def assert_subjects(self, *subjects: str, timeout: float = 5) -> list[Message]:
        """Exactly these subjects arrived, in this order."""
        return self.assert_sent(subjects=subjects, timeout=timeout)

    def assert_nothing_sent(self) -> None:
        got = self.messages()
        if got:
            listing = "\n".join(f"  {describe(m)}" for m in got)
            pytest.fail(f"expected no messages, got {len(got)}:\n{listing}", pytrace=False)
        # Nothing here may only mean it went elsewhere: say so when it did.
        hint = self._routing_hint(arrived=1)
        if hint:
            pytest.fail(f"expected no messages in this test's mailbox{hint}", pytrace=False)


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


def _remote_smtp(config: pytest.Config, url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    smtp = config.getoption("mailpit_smtp")
    if smtp:
        host, _, port = smtp.rpartition(":")
    else:
        host, port = urlsplit(url).hostname or "127.0.0.1", "1025"
    return host, int(port)


def _remote(request: pytest.FixtureRequest, url: str) -> Mailpit:
    from mailpit_py.client import Client

    return Mailpit(Client(url), _remote_smtp(request.config, url))


@pytest.fixture
def mailpit(request: pytest.FixtureRequest) -> Iterator[Mailpit]:
    """A mail catcher with an empty mailbox for this test (its own mailbox on a shared server
    with --mailpit-mailbox-per-test)."""
    from mailpit_py.client import Client, ClientError

    marker = request.node.get_closest_marker("mailpit")
    url = request.config.getoption("mailpit_url")
    if marker is not None:
        if url:
            pytest.skip("@pytest.mark.mailpit needs its own server; not with --mailpit-url")
        with _marked_server(marker.kwargs) as own:
            yield Mailpit(Client(own.http_url), own.smtp_address, own)
        return
    if per_test(request.config):
        yield request.getfixturevalue("mailpit_mailbox")
        return
    if url:
        mp = _remote(request, url)
    else:
        server = request.getfixturevalue("mailpit_server")
        mp = Mailpit(Client(server.http_url), server.smtp_address, server)
    try:
        mp.clear()
    except ClientError as err:
        if err.status == 0:  # --mailpit-url names a server that is not there
            pytest.fail(f"--mailpit-url: {err.message}", pytrace=False)
        raise
    yield mp


# -- a mailbox per test ----------------------------------------------------------------------

_SHARED = pytest.StashKey["Server"]()  # the controller's server for every xdist worker
_FAILED = pytest.StashKey[bool]()  # a phase of this test failed: keep its mailbox
_BOX = pytest.StashKey[str]()  # this test's mailbox URL, on a server that outlives the run


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller, as it starts each worker: with a mailbox per test, one
    server (started with the first worker) serves them all, so the tests of every worker share
    it and still see only their own mail."""
    config = node.config
    if not per_test(config) or config.getoption("mailpit_url"):
        return
    server = config.stash.get(_SHARED, None)
    if server is None:
        from mailpit_py.pytest_mailboxes import ROUTING_SETTINGS

        server = config.stash[_SHARED] = _start_server(**ROUTING_SETTINGS)
    host, port = server.smtp_address
    node.workerinput["mailpit_shared"] = f"{server.http_url} {host}:{port}"


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_SHARED, None)
    if server is not None:
        del config.stash[_SHARED]
        server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and item.stash.get(_BOX, None) is not None:
        item.stash[_FAILED] = True
        url = item.stash[_BOX]
        if url:
            report.sections.append(("mailpit", f"this test's mail is kept at {url}"))
    return report


@pytest.fixture(scope="session")
def mailpit_mailbox_server(request: pytest.FixtureRequest) -> Iterator[MailboxHost]:
    """Where the per-test mailboxes live: the instance of --mailpit-url, else the xdist
    controller's server, else a server of this process started with the routing they need."""
    from mailpit_py.pytest_mailboxes import ROUTING_SETTINGS, MailboxHost, check_mailboxes_api

    config = request.config
    url = config.getoption("mailpit_url")
    shared = getattr(config, "workerinput", {}).get("mailpit_shared")
    if url:
        host = MailboxHost(url, _remote_smtp(config, url), None, external=True)
        problem = check_mailboxes_api(host.client)
        if problem:
            pytest.fail(problem, pytrace=False)
        yield host
    elif shared:
        http_url, smtp = shared.split(" ")
        name, _, port = smtp.rpartition(":")
        yield MailboxHost(http_url, (name, int(port)), None, external=False)
    else:
        server = _start_server(**ROUTING_SETTINGS)
        try:
            yield MailboxHost(server.http_url, server.smtp_address, server, external=False)
        finally:
            server.stop()


@pytest.fixture
def mailpit_mailbox(
    request: pytest.FixtureRequest, mailpit_mailbox_server: MailboxHost
) -> Iterator[Mailpit]:
    """A mailbox of this test's own on a shared server: send to it by logging in to SMTP as
    `smtp_username` (any password) or by sending to addresses at `domain`; reads see only it,
    so nothing needs emptying, even with xdist workers sharing the server."""
    from mailpit_py.client import ClientError
    from mailpit_py.pytest_mailboxes import box_name, settings_for

    host = mailpit_mailbox_server
    name = box_name(request.node.nodeid)
    try:
        host.client.create_mailbox(name)  # so it lists empty before its first message
    except ClientError as err:
        if err.status == 0:
            pytest.fail(err.message, pytrace=False)
        # 409: made meanwhile; 403: this user may not create one: routing makes it
    smtp = settings_for(name, host.smtp_address)
    box = host.client.for_mailbox(name)
    request.node.stash[_BOX] = box.url if host.external else ""
    yield Mailpit(box, host.smtp_address, host.server, smtp, check_routing=host.external)
    if not request.node.stash.get(_FAILED, False):
        try:  # a passed test's mailbox goes; a failed one's stays to be looked at
            host.client.delete_mailbox(name)
        except ClientError:
            pass
