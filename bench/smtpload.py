#!/usr/bin/env python3
"""SMTP load generator: N messages over C concurrent connections, as fast as the server takes them.

The project's own unpaced load (bench/pace.py keeps a schedule instead); both send the same
~SIZE-byte plain-text messages over raw asyncio sockets, so the client's cost per message is
small and the same in every bench. Each connection takes the next message number from a shared
counter until all N are sent; `--fresh` opens a new session (EHLO ... QUIT) for every message,
as many application frameworks do.

    .venv/bin/python bench/smtpload.py HOST PORT [-n 2000] [-c 8] [--size 2000] [--fresh]
        [--rcpt user@example.org] [--spread 1]

`--rcpt` is the envelope recipient; a `{n}` in it becomes the message's number modulo `--spread`
(`--rcpt 'user@p{n}.test' --spread 50` spreads the load over 50 domains, for mailbox routes).

Prints one line (bench/ingest.py, ab.py, livepath.py and websocket.py parse it):
sent=N seconds=S rate=R/s p50=Xms p99=Yms  (latency per message: MAIL FROM to the 250 after
DATA, plus the session's setup and QUIT under --fresh). An SMTP reply other than the expected
one ends the run with an error and a non-zero exit status: a bench must not count a refusal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator

from pace import expect, make_msg

Session = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_session(host: str, port: int) -> Session:
    reader, writer = await asyncio.open_connection(host, port)
    await expect(reader, b"220")
    writer.write(b"EHLO smtpload.local\r\n")
    await expect(reader, b"250")
    return reader, writer


def rcpt_command(template: str, spread: int, i: int) -> bytes:
    """RCPT TO for message `i`: the template with `{n}` made i modulo `spread`."""
    return f"RCPT TO:<{template.replace('{n}', str(i % spread))}>\r\n".encode()


async def send_one(
    session: Session, msg: bytes, rcpt: bytes = b"RCPT TO:<user@example.org>\r\n"
) -> None:
    reader, writer = session
    # One command at a time (no pipelining), as smtplib and most application clients send.
    for command, code in (
        (b"MAIL FROM:<load@example.com>\r\n", b"250"),
        (rcpt, b"250"),
        (b"DATA\r\n", b"354"),
        (msg + b".\r\n", b"250"),
    ):
        writer.write(command)
        await expect(reader, code)


async def close_session(session: Session, strict: bool) -> None:
    reader, writer = session
    writer.write(b"QUIT\r\n")
    try:
        await expect(reader, b"221")
    except (OSError, RuntimeError):
        # At the end of a run a server that closes without its 221 has still stored every
        # message it acknowledged; within a --fresh run the session's QUIT is part of the work.
        if strict:
            raise
    finally:
        writer.close()


async def worker(args: argparse.Namespace, numbers: Iterator[int], latencies: list[float]) -> None:
    session: Session | None = None
    for i in numbers:
        msg = make_msg(i, args.size)  # built before the clock starts, like a ready app payload
        rcpt = rcpt_command(args.rcpt, args.spread, i)
        began = time.perf_counter()
        if session is None:
            session = await open_session(args.host, args.port)
        await send_one(session, msg, rcpt)
        if args.fresh:
            await close_session(session, strict=True)
            session = None
        latencies.append(time.perf_counter() - began)
    if session is not None:
        await close_session(session, strict=False)


async def run(args: argparse.Namespace) -> str:
    # A plain iterator shared by the workers: asyncio runs one at a time, so no lock is needed.
    numbers = iter(range(args.n))
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(worker(args, numbers, latencies) for _ in range(args.c)))
    took = time.perf_counter() - start
    lat = sorted(latencies) or [0.0]
    sent = len(latencies)
    return (
        f"sent={sent} seconds={took:.2f} rate={sent / took:.0f}/s "
        f"p50={lat[len(lat) // 2] * 1000:.1f}ms p99={lat[int(len(lat) * 0.99)] * 1000:.1f}ms"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="smtpload", description="Send N messages over C concurrent SMTP connections."
    )
    ap.add_argument("host", help="SMTP server address, e.g. 127.0.0.1")
    ap.add_argument("port", type=int, help="SMTP server port, e.g. 1025")
    ap.add_argument("-n", type=int, default=2000, help="messages to send (2000)")
    ap.add_argument("-c", type=int, default=8, help="concurrent connections (8)")
    ap.add_argument("--size", type=int, default=2000, help="approximate message size in bytes")
    ap.add_argument(
        "--fresh", action="store_true", help="a new connection for every message (reuse one)"
    )
    ap.add_argument(
        "--rcpt",
        default="user@example.org",
        help="envelope recipient; {n} in it is the message number modulo --spread",
    )
    ap.add_argument("--spread", type=int, default=1, help="how many values {n} takes (1)")
    args = ap.parse_args(argv)
    if args.n < 1 or args.c < 1 or args.size < 1:
        ap.error("-n, -c and --size must be at least 1")
    if args.spread < 1:
        ap.error("--spread must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        line = asyncio.run(run(args))
    except (OSError, RuntimeError) as exc:
        print(f"smtpload: {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
