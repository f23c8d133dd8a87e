"""`mailpit-py readyz`: exit 0 when an instance answers GET /readyz with 200 (health checks)."""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from mailpit_py.commands._common import error
from mailpit_py.config.errors import ConfigError

PROG = "mailpit-py readyz"

EXAMPLES = """\
exit status: 0 ready; 1 not ready (or not reachable) when the wait ran out; 2 bad usage.

examples:
  mailpit-py readyz                                   # the instance on this host
  mailpit-py readyz --url http://127.0.0.1:8025/mail/ # one with a --webroot
  mailpit-py readyz --wait 30 && run-my-tests          # wait for it to come up
  mailpit-py readyz --wait --timeout 60s -l 127.0.0.1:8025   # Mailpit's spelling
  mailpit-py readyz -l unix:/run/mailpit.sock:0660    # a Unix-socket listener
  Dockerfile: HEALTHCHECK CMD mailpit-py readyz
"""


def default_url(environ: dict[str, str]) -> str:
    """The instance this host's MP_UI_BIND_ADDR and MP_WEBROOT describe (the Docker case)."""
    from mailpit_py.config.settings import Config
    from mailpit_py.config.values import normalize_webroot

    addr = environ.get("MP_UI_BIND_ADDR") or Config.http_addr
    host, _, port = addr.rpartition(":")
    if host in ("", "0.0.0.0", "[::]"):
        host = "127.0.0.1"
    webroot = normalize_webroot(environ.get("MP_WEBROOT", "/"))
    scheme = "https" if environ.get("MP_UI_TLS_CERT") else "http"  # --ui-tls-cert
    return f"{scheme}://{host}:{port}{webroot}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Exit 0 when a mailpit-py (or Mailpit) instance answers GET /readyz with "
        "200: SMTP, the store and HTTP are all up.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        help="base URL of the instance, webroot included (default: from MP_UI_BIND_ADDR and "
        "MP_WEBROOT, else http://127.0.0.1:8025/)",
    )
    parser.add_argument(
        "-l",
        "--listen",
        metavar="ADDR",
        help="the instance's HTTP address, HOST:PORT (as Mailpit's readyz takes it) or "
        "unix:PATH:MODE (instead of --url; default: MP_UI_BIND_ADDR)",
    )
    parser.add_argument(
        "--webroot", metavar="PATH", help="the instance's --webroot (default: MP_WEBROOT)"
    )
    parser.add_argument(
        "--https", action="store_true", help="connect over HTTPS (the certificate is not checked)"
    )
    # Mailpit's --wait is a switch bounded by --timeout; ours took the seconds: both work.
    parser.add_argument(
        "--wait",
        nargs="?",
        const="",
        default=None,
        metavar="SECONDS",
        help="keep trying until ready: for --timeout, or for SECONDS (default: try once)",
    )
    parser.add_argument(
        "--timeout",
        default="30s",
        metavar="DURATION",
        help="how long --wait keeps trying, e.g. 60s or 2m (default: 30s, as in Mailpit)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return parser


class _UnixHTTP(http.client.HTTPConnection):
    """HTTP over a Unix socket (the server's --listen unix:PATH:MODE, as Mailpit spells it)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def check_unix(path: str, webroot: str, timeout: float) -> str:
    """check() for an instance listening on a Unix socket."""
    where = f"unix:{path} ({webroot}readyz)"
    conn = _UnixHTTP(path, timeout)
    try:
        conn.request("GET", webroot + "readyz")
        resp = conn.getresponse()
        body = resp.read(500).decode(errors="replace").strip()
        if resp.status == 200:
            return ""
        return f"{where} answered {resp.status}" + (f": {body}" if body else "")
    except (OSError, http.client.HTTPException) as exc:
        return (
            f"cannot reach {where} ({exc}): is mailpit-py running there? Start it with "
            "`mailpit-py`, or give -l with the socket it listens on"
        )
    finally:
        conn.close()


def check(url: str, timeout: float) -> str:
    """Empty when ready; else why not."""
    try:
        # A health probe asks whether the instance answers, not who it is: its certificate is
        # often self-signed (--ui-tls-cert sans:...), so it is not verified.
        context = ssl._create_unverified_context() if url.startswith("https:") else None
        with urllib.request.urlopen(url + "readyz", timeout=timeout, context=context) as resp:
            if resp.status == 200:
                return ""
            return f"{url}readyz answered {resp.status}"
    except urllib.error.HTTPError as exc:
        body = exc.read(500).decode(errors="replace").strip()
        return f"{url}readyz answered {exc.code}" + (f": {body}" if body else "")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return (
            f"cannot reach {url} ({reason}): is mailpit-py running there? Start it with "
            "`mailpit-py`, or pass --url with the address of its web UI"
        )


def wait_seconds(wait: str | None, timeout: str) -> float:
    """`--wait` alone waits for --timeout (Mailpit's form); `--wait 30` for 30 s (ours)."""
    from mailpit_py.config.values import parse_duration

    if wait is None:
        return 0.0
    return max(parse_duration(wait or timeout, "--wait" if wait else "--timeout"), 0.0)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        wait = wait_seconds(args.wait, args.timeout)
    except ConfigError as exc:
        error(PROG, str(exc))
        return 2
    environ = dict(os.environ)
    if args.listen:
        environ["MP_UI_BIND_ADDR"] = args.listen
    if args.webroot:
        environ["MP_WEBROOT"] = args.webroot
    if args.https:
        environ["MP_UI_TLS_CERT"] = "given"
    from mailpit_py.config.values import normalize_webroot
    from mailpit_py.net.listen import unix_address

    try:
        unix = None if args.url else unix_address(environ.get("MP_UI_BIND_ADDR", ""), "--listen")
    except ConfigError as exc:
        error(PROG, str(exc))
        return 2
    webroot = normalize_webroot(environ.get("MP_WEBROOT", "/"))
    url = f"unix:{unix.path}" if unix else args.url or default_url(environ)
    if not url.endswith("/") and unix is None:
        url += "/"
    deadline = time.monotonic() + wait
    pause = threading.Event()
    while True:
        timeout = min(5.0, max(wait, 1.0))
        if unix is not None:  # Mailpit's unix:PATH:MODE listener
            problem = check_unix(unix.path, webroot, timeout)
        else:
            problem = check(url, timeout=timeout)
        if not problem:
            if not args.quiet:
                print(f"ready: {url}")
            return 0
        if time.monotonic() >= deadline:
            if not args.quiet:
                waited = f" (waited {wait:g}s)" if wait else ""
                error(PROG, problem + waited)
            return 1
        pause.wait(min(0.2, max(deadline - time.monotonic(), 0.0)))
