"""Browser-test helpers for layout: is an element really on screen, and screenshots kept as
artifacts at the widths the UI is checked at."""

from __future__ import annotations

import re
from typing import Any

from helpers import REPO

ARTIFACTS = REPO / "test-artifacts"
WIDTHS = {"phone": 390, "small-desktop": 1024, "desktop": 1280}

# Whether the element's box lies inside the viewport and inside every ancestor that clips
# (overflow other than visible), so nothing of it is scrolled or cut away. Returns a reason or "".
CLIPPED_JS = """el => {
  const r = el.getBoundingClientRect();
  const name = el.id || el.className || el.tagName;
  if (r.width === 0 || r.height === 0) return `${name} has no size`;
  const inside = (b) => r.left >= b.left - 0.5 && r.right <= b.right + 0.5
    && r.top >= b.top - 0.5 && r.bottom <= b.bottom + 0.5;
  if (!inside({left: 0, top: 0, right: innerWidth, bottom: innerHeight}))
    return `${name} is outside the viewport: ${JSON.stringify(r)}`;
  for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
    const b = a.getBoundingClientRect();
    const left = b.left + a.clientLeft;
    const top = b.top + a.clientTop;
    const box = {left, top, right: left + a.clientWidth, bottom: top + a.clientHeight};
    if (!inside(box)) return `${name} is clipped by ${a.id || a.className || a.tagName}`;
  }
  return '';
}"""


def assert_fully_visible(page: Any, selector: str) -> None:
    """Every element the selector matches is visible without scrolling."""
    loc = page.locator(selector)
    n = loc.count()
    assert n > 0, f"nothing matches {selector}"
    for i in range(n):
        reason = loc.nth(i).evaluate(CLIPPED_JS)
        assert not reason, f"{selector} #{i}: {reason}"


def assert_no_sideways_scroll(page: Any) -> None:
    wide = page.evaluate("document.documentElement.scrollWidth - innerWidth")
    assert wide <= 0, f"the page scrolls sideways by {wide}px"


def save_screenshot(page: Any, name: str) -> None:
    """A screenshot under test-artifacts/ (git-ignored) for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "_", name)
    page.screenshot(path=str(ARTIFACTS / f"{safe}.png"))
