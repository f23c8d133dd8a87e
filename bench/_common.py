"""Shared bench helpers: start the mailpit_py CLI in its own process, read /proc, paced load."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # loopback only
PACE = Path(__file__).resolve().parent / "pace.py"
# The load generator is bench/smtpload.py; MAILPIT_PY_SMTPLOAD may point at another with its CLI.
SMTPLOAD = Path(os.environ.get("MAILPIT_PY_SMTPLOAD", REPO / "bench" / "smtpload.py"))

_BANNER = re.compile(
    r"SMTP on 127\.0\.0\.1:(\d+), web UI and API on (http://\S+/), "
    r"database (.+?) \((?:temporary|kept)"
)


@dataclass
class Mailpit:
    """The mailpit_py CLI running in a child process, as the banner on its stderr described it."""

    proc: subprocess.Popen[str]
    port: int  # SMTP
    url: str  # web UI and API, ends in "/"
    db: str
    log_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM (the CLI's clean shutdown), SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def start_mailpit(*args: str) -> Mailpit:
    """Run `python -m mailpit_py -s 127.0.0.1:0 -l 127.0.0.1:0 ARGS` and wait for its banner.

    Its log (one line per message at the default level) is drained by a thread so a full pipe
    never stalls the server; the last lines are kept to explain a failure."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpit_py", "-s", f"{HOST}:0", "-l", f"{HOST}:0", *args],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stderr is not None
    banner = proc.stderr.readline()
    m = _BANNER.search(banner)
    if not m:
        proc.kill()
        rest = proc.stderr.read()
        sys.exit(f"mailpit_py did not start: {(banner + rest).strip()!r}")
    server = Mailpit(proc, int(m.group(1)), m.group(2), m.group(3))

    def drain(stream=proc.stderr, tail=server.log_tail) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            tail.append(line.rstrip("\n"))

    threading.Thread(target=drain, name="mailpit-log", daemon=True).start()
    return server


def _stat_cpu(stat: Path) -> float:
    """User + system CPU seconds from a /proc stat file (a process's or one thread's)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), all its threads."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def thread_cpu(pid: int) -> dict[str, float]:
    """User + system CPU time so far of each thread of a process (Linux /proc), by thread id;
    empty once the process has gone."""
    out: dict[str, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out[task.name] = _stat_cpu(task / "stat")
        except OSError:
            continue  # the thread ended meanwhile
    return out


def busiest_share(before: dict[str, float], after: dict[str, float], wall: float) -> float:
    """The busiest thread's CPU over `wall` seconds, as a share of that time (0-1)."""
    if wall <= 0:
        return float("nan")
    return max((t - before.get(tid, 0.0) for tid, t in after.items()), default=0.0) / wall


def proc_kb(pid: int, name: str) -> int:
    """A `kB` line of /proc/PID/status (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


def proc_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise KeyError("Threads")


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass(frozen=True)
class PaceResult:
    """What bench/pace.py reported: how much it sent, how fast, and how far behind schedule."""

    sent: int
    seconds: float
    rate: float
    behind_ms: float  # the most the sender ever lagged its schedule
    p50_ms: float
    p99_ms: float
    errors: int


_PACE_RESULT = re.compile(
    r"sent=(\d+) seconds=([\d.]+) rate=([\d.]+)/s behind_max=([\d.]+)ms "
    r"p50=([\d.]+)ms p99=([\d.]+)ms errors=(\d+)"
)


def start_paced(
    port: int,
    rate: float,
    seconds: float,
    connections: int = 8,
    size: int = 2000,
    reconnect_every: int = 0,
    keep_sessions: int = 0,
) -> subprocess.Popen[str]:
    """bench/pace.py in its own process (no GIL shared with anything measured)."""
    cmd = [sys.executable, str(PACE), HOST, str(port), "--rate", str(rate)]
    cmd += ["--seconds", str(seconds), "-c", str(connections), "--size", str(size)]
    cmd += ["--reconnect-every", str(reconnect_every), "--keep-sessions", str(keep_sessions)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_paced(proc: subprocess.Popen[str], timeout: float | None = None) -> PaceResult:
    out, err = proc.communicate(timeout=timeout)
    m = _PACE_RESULT.search(out)
    if proc.returncode != 0 or not m:
        sys.exit(f"pace.py exit {proc.returncode}: {(err or out).strip()[-500:]}")
    g = m.groups()
    return PaceResult(int(g[0]), *(float(x) for x in g[1:6]), int(g[6]))  # type: ignore[arg-type]


def paced_load(port: int, rate: float, seconds: float, **kwargs: int) -> PaceResult:
    proc = start_paced(port, rate, seconds, **kwargs)
    return finish_paced(proc, timeout=seconds * 3 + 120)


def kept_after(sent: int, max_messages: int) -> int:
    """How many messages retention keeps after `sent` deliveries into an empty mailbox: all of
    them up to max + slack, then the count drops back to max each time it would pass that."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from mailpit_py.store.retention import retention_slack

    if max_messages <= 0:
        return sent
    top = max_messages + retention_slack(max_messages)
    if sent <= top:
        return sent
    return max_messages + (sent - top - 1) % (top - max_messages + 1)
