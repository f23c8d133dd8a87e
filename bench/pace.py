"""Paced SMTP load: a steady R messages/s over C connections for S seconds (raw asyncio sockets).

`bench/smtpload.py` sends as fast as it can; a steady rate needs a schedule: message i is due
at start + i/R, and the next free connection sends it then (or at once if the sender is behind).
So the rate holds while the server keeps up, and when it cannot, the line shows by how much the
sender fell behind its schedule (`behind_max`) and the achieved rate drops below R.
`--reconnect-every K` ends each session after K messages and opens a new one, so a long run
also churns connections (a descriptor leak shows up in a soak); `--keep-sessions N` exempts the
first N connections, which keep one session for the whole run (as an app's pooled connection
does, so per-session state that grows shows up too).

    .venv/bin/python bench/pace.py HOST PORT [--rate 500] [--seconds 10] [-c 8] [--size 2000]

Prints one line: sent=N seconds=S rate=R/s behind_max=Xms p50=Yms p99=Zms errors=E
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time


def make_msg(i: int, size: int) -> bytes:
    line = f"Lorem ipsum dolor sit amet {i} " * 2
    body = "\r\n".join([line] * max(1, size // len(line)))
    return (
        f"From: Paced Load <load@example.com>\r\nTo: user{i % 50}@example.org\r\n"
        f"Subject: paced message {i}\r\nMessage-ID: <pace-{i}-{os.getpid()}@example.com>\r\n"
        "Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


async def expect(reader: asyncio.StreamReader, code: bytes) -> None:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            if not line.startswith(code):
                raise RuntimeError(f"expected {code!r}, got {line!r}")
            return


class Pacer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.total = int(args.rate * args.seconds)
        self.next = itertools.count()
        self.latencies: list[float] = []
        self.behind = 0.0
        self.errors = 0
        self.start = 0.0

    async def session(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        r, w = await asyncio.open_connection(host, port)
        await expect(r, b"220")
        w.write(b"EHLO pace.local\r\n")
        await expect(r, b"250")
        return r, w

    async def send(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, msg: bytes) -> None:
        w.write(b"MAIL FROM:<load@example.com>\r\n")
        await expect(r, b"250")
        w.write(b"RCPT TO:<user@example.org>\r\n")
        await expect(r, b"250")
        w.write(b"DATA\r\n")
        await expect(r, b"354")
        w.write(msg + b".\r\n")
        await expect(r, b"250")

    async def quit(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            w.write(b"QUIT\r\n")
            await expect(r, b"221")
        except (OSError, RuntimeError):
            pass
        w.close()

    async def worker(self, number: int) -> None:
        a = self.args
        reconnect_every = 0 if number < a.keep_sessions else a.reconnect_every
        conn = None
        in_session = 0
        loop = asyncio.get_running_loop()
        while (i := next(self.next)) < self.total:
            due = self.start + i / a.rate
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            began = loop.time()
            self.behind = max(self.behind, began - due)
            try:
                if conn is None:
                    conn = await self.session(a.host, a.port)
                    in_session = 0
                await self.send(*conn, make_msg(i, a.size))
                in_session += 1
            except (OSError, RuntimeError):
                self.errors += 1
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            self.latencies.append(loop.time() - began)
            if reconnect_every and in_session >= reconnect_every:
                await self.quit(*conn)
                conn = None
        if conn is not None:
            await self.quit(*conn)

    async def run(self) -> str:
        self.start = asyncio.get_running_loop().time() + 0.05
        t0 = time.perf_counter()
        await asyncio.gather(*(self.worker(i) for i in range(self.args.c)))
        took = time.perf_counter() - t0
        lat = sorted(self.latencies) or [0.0]
        sent = len(self.latencies)
        return (
            f"sent={sent} seconds={took:.2f} rate={sent / took:.1f}/s "
            f"behind_max={self.behind * 1000:.1f}ms p50={lat[len(lat) // 2] * 1000:.1f}ms "
            f"p99={lat[int(len(lat) * 0.99)] * 1000:.1f}ms errors={self.errors}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--rate", type=float, default=500.0, help="messages per second (500)")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long (10)")
    ap.add_argument("-c", type=int, default=8, help="connections (8)")
    ap.add_argument("--size", type=int, default=2000, help="approximate message size (2000)")
    ap.add_argument("--reconnect-every", type=int, default=0, help="new session after K (never)")
    ap.add_argument(
        "--keep-sessions", type=int, default=0, help="connections that never reconnect (0)"
    )
    args = ap.parse_args()
    print(asyncio.run(Pacer(args).run()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
