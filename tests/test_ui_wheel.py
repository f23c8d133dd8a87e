"""An installed wheel serves the web UI, not only an editable install from the checkout.

Builds the wheel, installs it with its dependencies into a clean virtual environment (no system
site-packages, so nothing from the checkout or the test venv can stand in for a missing file),
starts `mailpit-py` from there and fetches `/`, a script and a stylesheet that the page names.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO

BANNER = re.compile(r"web UI and API on (http://[^\s,]+)")
# The installed copy must be the only one: PYTHONPATH (a work tree's checkout) would stand in
# for it, and MP_* settings of the caller's shell would change the server's.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MP_")}


def run(*cmd: str | Path, cwd: Path, timeout: float = 300) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=CLEAN_ENV,
    )
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def test_installed_wheel_serves_the_ui(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, REPO, cwd=tmp_path)
    wheels = list(dist.glob("mailpit_py-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    run(bindir / "python", "-m", "pip", "install", "-q", wheels[0], cwd=tmp_path)

    # The UI files come from the installed package, not from the checkout.
    where = run(
        bindir / "python",
        "-c",
        "from mailpit_py.webapp.ui import web_root; print(web_root())",
        cwd=tmp_path,
    ).strip()
    assert str(venv) in where, where

    env = CLEAN_ENV
    proc = subprocess.Popen(
        [bindir / "mailpit-py", "-s", "127.0.0.1:0", "-l", "127.0.0.1:0", "-d", ":memory:"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        url = None
        seen = []
        for line in proc.stderr:  # the banner comes within a second or two
            seen.append(line)
            found = BANNER.search(line)
            if found:
                url = found.group(1)
                break
        assert url, f"no banner on stderr: {''.join(seen)}"
        url = url.rstrip("/") + "/"

        status, ctype, body = fetch(url)
        assert status == 200 and ctype.startswith("text/html")
        page = body.decode()
        assert "<title>" in page
        script = re.search(r'<script type="module" src="([^"]+\.js)"', page)
        style = re.search(r'<link rel="stylesheet" href="([^"]+\.css)"', page)
        assert script and style, page[:500]
        status, ctype, js = fetch(url + script.group(1))
        assert status == 200 and ctype.startswith("text/javascript")
        assert b"import" in js and len(js) > 1000
        status, ctype, css = fetch(url + style.group(1))
        assert status == 200 and ctype.startswith("text/css")
        assert b":root" in css
        # The modules the script imports are there too.
        for module in re.findall(rb"from '\./([\w-]+\.js)'", js):
            base = url + script.group(1).rsplit("/", 1)[0] + "/"
            assert fetch(base + module.decode())[0] == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
