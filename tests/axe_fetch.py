"""Fetches the pinned axe-core (the accessibility engine the browser tests run) from the npm
registry into .test-deps/, checking the registry's sha512 integrity; `make test` runs it.

axe-core is not committed (it is a test tool under its own licence, MPL-2.0): the tarball's
axe.min.js and LICENSE are kept in a git-ignored folder, fetched once per version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "4.10.3"
TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
# From the registry's metadata: `npm view axe-core@4.10.3 dist.integrity`.
INTEGRITY = "sha512-" + (
    "Xm7bpRXnDSX2YE2YFfBk2FnF0ep6tmG7xPh8iHee8MIcrgq762Nkce856dYtJYLkuIoYZvGfTs/PbZhideTcEg=="
)
DEST = Path(__file__).resolve().parent.parent / ".test-deps" / f"axe-core-{VERSION}"
SCRIPT = DEST / "axe.min.js"
WANTED = {"package/axe.min.js": "axe.min.js", "package/LICENSE": "LICENSE"}


def fetch() -> str:
    """Fetches and unpacks the tarball unless it is there; returns what was done, for the log."""
    if SCRIPT.is_file():
        return f"axe-core {VERSION} for the accessibility tests is in {DEST}"
    with urllib.request.urlopen(TARBALL, timeout=60) as resp:
        data = resp.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise ValueError(f"{TARBALL}: sha512 {digest} is not the pinned {INTEGRITY}")
    DEST.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = WANTED.get(member.name)
            source = tar.extractfile(member) if name and member.isfile() else None
            if name and source:
                (DEST / name).write_bytes(source.read())
    if not SCRIPT.is_file():
        raise ValueError(f"{TARBALL} holds no package/axe.min.js")
    return f"fetched axe-core {VERSION} (sha512 checked) from registry.npmjs.org into {DEST}"


def main() -> int:
    try:
        print(f"make test: {fetch()}")
    except (OSError, ValueError) as exc:
        ci = os.environ.get("CI", "").lower() == "true"
        print(
            f"make test: could not fetch axe-core {VERSION} ({exc}); the accessibility tests "
            + ("will fail (CI=true)" if ci else "will skip")
            + f": fetch {TARBALL} by hand into {DEST}",
            file=sys.stderr,
        )
        return 1 if ci else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
