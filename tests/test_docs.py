"""The docs keep up with the code: every setting, flag and variable is documented, the README
stays one screen that links every page of docs/, and every in-repo link leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import REPO
from mailpit_py.config.settings import OPTIONS, field_names

README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"
OPTIONS_PAGE = (DOCS / "options.md").read_text()
# Markdown the project keeps besides the code: what a link may be checked in.
MARKDOWN = [REPO / "README.md", *sorted(DOCS.glob("*.md")), *sorted((REPO / "bench").glob("*.md"))]


def test_readme_starts_with_the_two_command_quick_start() -> None:
    head = README[:2500]
    assert "make run" in head
    assert "make test" in head


def test_readme_is_one_screen_that_links_every_docs_page() -> None:
    # The reference lives in docs/; a README that grows back into it is read by nobody.
    assert len(README.encode()) < 12_000, f"README.md is {len(README.encode())} bytes"
    linked = set(re.findall(r"\]\(docs/([^)#]+)", README))
    pages = {path.name for path in DOCS.glob("*.md")}
    assert pages - linked == set(), f"README.md does not link {sorted(pages - linked)}"


def test_every_config_field_is_in_the_options_page() -> None:
    documented = set(re.findall(r"`([a-z][a-z0-9_]*)`", OPTIONS_PAGE))
    missing = [name for name in field_names() if name not in documented]
    assert not missing, f"docs/options.md does not document Config fields {missing}"


def test_every_flag_and_variable_is_in_the_options_table() -> None:
    rows = [line for line in OPTIONS_PAGE.splitlines() if line.startswith("|")]
    for opt in OPTIONS:
        row = next((r for r in rows if f"`{opt.flags[-1]}" in r), None)
        assert row is not None, f"{opt.flags[-1]} has no row in the docs/options.md table"
        assert f"`{opt.env}`" in row, f"{opt.flags[-1]} row lacks {opt.env}"
        assert f"`{opt.field}`" in row, f"{opt.flags[-1]} row lacks the field {opt.field}"


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file (fenced code left out)."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_in_repo_link_leads_to_a_file_and_heading_that_exist() -> None:
    broken = []
    for page in MARKDOWN:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # another site: not checked offline
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_no_page_cites_an_issue_number_instead_of_its_reason() -> None:
    # An issue number means nothing to a reader without the tracker; the docs say why.
    cited = [
        f"{page.relative_to(REPO)}: {match.group(0)}"
        for page in MARKDOWN
        for match in re.finditer(r"\b[Ii]ssues? #?[0-9]+", page.read_text())
    ]
    assert not cited, f"issue numbers in the docs: {cited}"


def test_ci_script_runs_make_test() -> None:
    assert "make test" in (REPO / ".ci" / "run").read_text()
