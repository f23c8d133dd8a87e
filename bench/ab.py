"""A/B ingest benchmark: this checkout against another revision, in paired, alternating runs.

On this 2-CPU machine two identical ingest runs differ by up to 15%, so a change worth 5-10% is
lost in one `bench/ingest.py` table. Here both versions run at once, each the real CLI in its own
process (this ``bench/ingest.py --serve mailpit_py`` running the code of either tree, with the
default settings or, ``--lean``, ``-m 0 -q``), and take the same
``smtpload`` load in turns: round after round, alternating which goes first, each run only once
neither server is busy. Each round starts both servers afresh (one server process can stay faster
than an identical one for its whole life) and gives one paired ratio (this / base), so drift in
the machine's speed cancels out; the summary is the median ratio, its spread, and in how many rounds
this checkout was faster (with a two-sided sign test: how likely that count is if the two were
equally fast).

The base is a git revision (default ``HEAD``), checked out into a temporary worktree that is
removed afterwards; "this" is the working tree as it is, uncommitted changes included. Both
store every message (the rows are counted after every run, as in ``bench/ingest.py``).

Usage: .venv/bin/python bench/ab.py [--base REV] [--mode reuse] [-n 2000] [--rounds 10]
                                    [--size 2000] [--warmup 200] [--lean]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO
from ingest import MODES, Child, Tally, find_smtpload, one_run, start_child


def sign_test(wins: int, rounds: int) -> float:
    """Two-sided sign test: the chance of a split at least this uneven between equal versions."""
    if rounds == 0:
        return 1.0
    extreme = max(wins, rounds - wins)
    tail = sum(math.comb(rounds, k) for k in range(extreme, rounds + 1)) / 2**rounds
    return min(1.0, 2 * tail)


def worktree(rev: str, where: Path) -> Path:
    """A detached checkout of `rev` under `where` (git worktree, sharing this repository)."""
    path = where / "base"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(path), rev],
        check=True,
    )
    return path


def remove_worktree(path: Path) -> None:
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
        check=False,
        capture_output=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--base", default="HEAD", help="git revision to compare against (HEAD)")
    ap.add_argument("--mode", default="reuse", choices=[m.name for m in MODES])
    # smtpload reports whole hundredths of a second: 2000 messages keep that under 1% of a run.
    ap.add_argument("-n", type=int, default=2000, help="messages per run (2000)")
    ap.add_argument("--rounds", type=int, default=10, help="paired runs (10)")
    ap.add_argument("--size", type=int, default=2000, help="approximate message size (2000)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up messages per server (200)")
    ap.add_argument(
        "--lean", action="store_true", help="both with -m 0 -q instead of the default settings"
    )
    args = ap.parse_args(argv)
    if args.n <= 0 or args.rounds <= 0:
        ap.error("need -n > 0 and --rounds > 0")
    mode = next(m for m in MODES if m.name == args.mode)
    smtpload = find_smtpload()
    tally = Tally()
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="mailpit-ab-") as tmp:
        base_tree = worktree(args.base, Path(tmp))
        try:
            print(f"base = {args.base} ({base_tree}); this = {REPO} (working tree)", flush=True)
            trees = {"base": base_tree, "this": REPO}
            for rnd in range(args.rounds):
                # New processes every round: a server process can run persistently faster or
                # slower than an identical one (seen here: 15% for a whole run of rounds), which
                # pairing within one pair of processes would take for a difference of code.
                names = ("base", "this") if rnd % 2 == 0 else ("this", "base")
                children = [
                    start_child("mailpit_py", tree=trees[n], name=n, lean=args.lean) for n in names
                ]
                for child in children:
                    one_run(tally, smtpload, child, mode, args.warmup, args.size, "warmup", [child])
                rates = {}
                for child in children:
                    res = one_run(
                        tally, smtpload, child, mode, args.n, args.size, f"#{rnd + 1}", children
                    )
                    rates[child.name] = res.rate if res else float("nan")
                for child in children:
                    child.stop()
                children = []
                print(
                    f"  round {rnd + 1:2d}: base {rates['base']:6.0f}  this {rates['this']:6.0f}"
                    f"  msgs/s  ratio {rates['this'] / rates['base']:.3f}",
                    flush=True,
                )
        finally:
            for child in children:
                child.stop()
            remove_worktree(base_tree)
    base = tally.rates.get((mode.name, "base"), [])
    this = tally.rates.get((mode.name, "this"), [])
    ratios = [t / b for t, b in zip(this, base, strict=False) if b > 0]
    if ratios:
        wins, losses = sum(r > 1 for r in ratios), sum(r < 1 for r in ratios)
        print(
            f"\n{mode.label}, {args.n} msgs x {len(ratios)} rounds: this / base median "
            f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); "
            f"this faster in {wins}, slower in {losses} (ties left out; sign test p = "
            f"{sign_test(wins, wins + losses):.3f})"
        )
        for name in ("base", "this"):
            busy = tally.busy.get((mode.name, name), [])
            cpu = tally.cpu_us.get((mode.name, name), [])
            commit = tally.commit_ms.get((mode.name, name), [])
            if busy and cpu and commit:
                print(
                    f"  {name}: median {statistics.median(cpu):.0f} us CPU/msg, loop busy "
                    f"{statistics.median(busy) * 100:.0f}%, DATA to commit "
                    f"{statistics.median(commit):.2f} ms"
                )
    for failure in tally.failures:
        print(f"FAILED: {failure}")
    return 1 if tally.failures or tally.lost or not ratios else 0


if __name__ == "__main__":
    sys.exit(main())
