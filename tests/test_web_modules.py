"""The web UI's JavaScript modules stay small and sound: no build step checks them, so these do.

Each module in web/ stays under a size a reader can hold, every name one module imports from
another is exported there (a typo would only show as a blank page and a console error), every
module is reached from the entry app.js, and the files say why instead of citing an issue number.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from helpers import REPO, make_server

WEB = REPO / "web"
MODULES = sorted(WEB.glob("*.js"))
MAX_LINES = 600
ENTRY_MAX_LINES = 250  # app.js only wires the views together

IMPORT = re.compile(r"""^import\s*(?:\{([^}]*)\}\s*from\s*)?['"](\.[^'"]+)['"]""", re.M)
EXPORT = re.compile(
    r"^export\s+(?:async\s+)?(?:function\s*\*?|class|const|let|var)\s+([A-Za-z_$][\w$]*)", re.M
)
EXPORT_LIST = re.compile(r"^export\s*\{([^}]*)\}", re.M)


def _imports(path: Path) -> list[tuple[Path, list[str]]]:
    found = []
    for match in IMPORT.finditer(path.read_text()):
        names = [n.split(" as ")[0].strip() for n in (match.group(1) or "").split(",")]
        found.append(((path.parent / match.group(2)).resolve(), [n for n in names if n]))
    return found


def _exports(path: Path) -> set[str]:
    text = path.read_text()
    names = set(EXPORT.findall(text))
    for group in EXPORT_LIST.findall(text):
        names.update(n.split(" as ")[-1].strip() for n in group.split(",") if n.strip())
    return names


def test_no_module_is_too_long_and_the_entry_only_wires() -> None:
    assert MODULES, "no JavaScript modules in web/"
    lines = {p.name: len(p.read_text().splitlines()) for p in MODULES}
    too_long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert not too_long, f"web modules over {MAX_LINES} lines (split them along a seam): {too_long}"
    assert lines["app.js"] <= ENTRY_MAX_LINES, f"web/app.js has {lines['app.js']} lines"


def test_every_import_names_an_export_and_every_module_is_used() -> None:
    missing = []
    reached = {(WEB / "app.js").resolve()}
    todo = [(WEB / "app.js").resolve()]
    while todo:
        module = todo.pop()
        for target, names in _imports(module):
            if not target.is_file():
                missing.append(f"{module.name} imports {target.name}, which does not exist")
                continue
            exported = _exports(target)
            absent = [n for n in names if n not in exported]
            missing += [f"{module.name}: {target.name} exports no {n}" for n in absent]
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert not missing, "\n".join(missing)
    unused = sorted(p.name for p in MODULES if p.resolve() not in reached)
    assert not unused, f"modules no page loads (app.js does not reach them): {unused}"


def test_web_files_give_reasons_not_issue_numbers() -> None:
    # An issue number means nothing to a reader without the tracker; the comment says why.
    cited = [
        f"{path.name}: {match.group(0)}"
        for path in sorted(WEB.iterdir())
        if path.suffix in {".js", ".css", ".html"}
        for match in re.finditer(r"\b[Ii]ssues? #?[0-9]+", path.read_text())
    ]
    assert not cited, f"issue numbers in web/: {cited}"


def test_the_page_preloads_every_module_at_once() -> None:
    # Without preloads a cold load fetches the modules in waves, one round trip per import depth.
    with make_server() as mp, urllib.request.urlopen(mp.http_url, timeout=10) as resp:
        page = resp.read().decode()
    link = r'<link rel="modulepreload" href="ui/[0-9a-f]+/([\w.-]+\.js)">'
    preloaded = set(re.findall(link, page))
    assert preloaded == {p.name for p in MODULES} - {"app.js"}
    assert "{{" not in page
