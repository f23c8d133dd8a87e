"""HTML compatibility (Mailpit's html-check): which HTML elements, attributes, image formats
and CSS features of a message the major email clients do not or only partly support, from
the vendored caniemail.com data set, with a score and the places in the HTML."""

from __future__ import annotations

import html.parser
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

MAX_PLACES = 20  # places listed per feature; Found still counts them all


@lru_cache(maxsize=1)
def data() -> dict[str, Any]:
    text = resources.files("mailpit_py.checks").joinpath("caniemail.json").read_text("utf-8")
    return json.loads(text)


@dataclass
class Place:
    line: int
    column: int
    text: str

    def to_api(self) -> dict[str, Any]:
        return {"Line": self.line, "Column": self.column, "Text": self.text}


@dataclass
class Found:
    """What the scan saw: slug -> places."""

    places: dict[str, list[Place]] = field(default_factory=dict)
    nodes: int = 0

    def add(self, slug: str, line: int, col: int, text: str) -> None:
        self.places.setdefault(slug, []).append(Place(line, col + 1, text[:120]))


# -- HTML: elements and attributes -------------------------------------------------------------

_SEMANTIC = (
    "article aside details figcaption figure footer header main mark nav section summary time"
)
ELEMENTS: dict[str, tuple[str, ...]] = {
    "html-h1-h6": ("h1", "h2", "h3", "h4", "h5", "h6"),
    "html-lists": ("ul", "ol", "dl"),
    "html-semantics": tuple(_SEMANTIC.split()),
    "html-image-maps": ("map",),
    "html-svg": ("svg",),
}
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "html-align": ("align",),
    "html-background": ("background",),
    "html-cellpadding": ("cellpadding",),
    "html-cellspacing": ("cellspacing",),
    "html-dir": ("dir",),
    "html-height": ("height",),
    "html-hidden": ("hidden",),
    "html-lang": ("lang",),
    "html-loading-attribute": ("loading",),
    "html-popover": ("popover",),
    "html-required": ("required",),
    "html-role": ("role",),
    "html-srcset": ("srcset", "sizes"),
    "html-target": ("target",),
    "html-valign": ("valign",),
    "html-width": ("width",),
    "html-aria-describedby": ("aria-describedby",),
    "html-aria-hidden": ("aria-hidden",),
    "html-aria-label": ("aria-label",),
    "html-aria-labelledby": ("aria-labelledby",),
    "html-aria-live": ("aria-live",),
}
IMAGE_FORMATS = {
    "image-png": r"\.png$",
    "image-jpg": r"\.jpe?g$",
    "image-gif": r"\.gif$",
    "image-webp": r"\.webp$",
    "image-avif": r"\.avif$",
    "image-bmp": r"\.bmp$",
    "image-ico": r"\.ico$",
    "image-svg": r"\.svg$",
    "image-tiff": r"\.tiff?$",
    "image-heif": r"\.hei[fc]$",
    "image-hdr": r"\.hdr$",
    "image-apng": r"\.apng$",
    "image-mp4": r"\.mp4$",
}


def _element_slugs() -> dict[str, str]:
    """tag -> slug, from the data set's `<tag> element` titles plus the grouped ones."""
    out: dict[str, str] = {}
    for entry in data()["data"]:
        m = re.fullmatch(r"<([a-z0-9]+)>(?: element)?", entry["title"])
        if entry["slug"].startswith("html-") and m:
            out[m.group(1)] = entry["slug"]
    for slug, tags in ELEMENTS.items():
        for tag in tags:
            out.setdefault(tag, slug)
    return out


class _Scanner(html.parser.HTMLParser):
    def __init__(self, found: Found, on_css: Callable[[str, int, int, bool], None]) -> None:
        super().__init__(convert_charrefs=True)
        self.found = found
        self.on_css = on_css
        self.elements = _element_slugs()
        self.in_style = False
        self.in_body = False
        self.style_pos = (1, 0)

    def _start(self) -> str:
        return self.get_starttag_text() or ""

    def handle_decl(self, decl: str) -> None:
        if decl.lower().strip() == "doctype html":
            line, col = self.getpos()
            self.found.add("html-doctype", line, col, f"<!{decl}>")

    def handle_comment(self, data: str) -> None:
        line, col = self.getpos()
        self.found.add("html-comments", line, col, f"<!--{data[:60]}-->")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line, col = self.getpos()
        text = self._start()
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "body":
            self.in_body = True
        if tag not in ("html", "head", "meta", "title") and (self.in_body or tag != "style"):
            self.found.nodes += 1
        slug = self.elements.get(tag)
        if tag == "button":
            slug = "html-button-reset" if a.get("type") == "reset" else "html-button-submit"
        elif tag == "input":
            kind = a.get("type", "text").lower()
            slug = (
                f"html-input-{kind}"
                if kind in ("checkbox", "hidden", "radio", "reset", "submit", "text")
                else None
            )
        elif tag == "meta" and a.get("name", "").lower() == "color-scheme":
            slug = "html-meta-color-scheme"
        if slug:
            self.found.add(slug, line, col, text)
        for slug, names in ATTRIBUTES.items():
            if any(n in a for n in names):
                self.found.add(slug, line, col, text)
        if tag == "a":
            href = a.get("href", "").strip().lower()
            if href.startswith("#"):
                self.found.add("html-anchor-links", line, col, text)
            elif href.startswith("mailto:"):
                self.found.add("html-mailto-links", line, col, text)
        if tag == "img" and a.get("src"):
            src = a["src"].strip()
            if src.lower().startswith("data:"):
                self.found.add("image-base64", line, col, text)
            path = src.split("?")[0].split("#")[0].lower()
            for slug, pattern in IMAGE_FORMATS.items():
                if re.search(pattern, path) or src.lower().startswith(f"data:image/{slug[6:]}"):
                    self.found.add(slug, line, col, text)
        if tag == "style":
            self.in_style = True
            self.style_pos = (line, col)
            if self.in_body:
                self.found.add("x-style-in-body", line, col, text)
        if "style" in a and a["style"].strip():
            self.on_css(a["style"], line, col, True)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self.in_style = False

    def handle_data(self, data: str) -> None:
        if self.in_style:
            line, col = self.style_pos
            self.on_css(data, line, col, False)


# -- CSS ----------------------------------------------------------------------------------------

_PROP_RE = re.compile(r"^[a-z-]+$")


@lru_cache(maxsize=1)
def _property_slugs() -> dict[str, str]:
    """CSS property -> slug, from titles such as `margin`, `gap, column-gap, row-gap`."""
    out: dict[str, str] = {}
    for entry in data()["data"]:
        slug = entry["slug"]
        if not slug.startswith("css-") or slug.startswith(("css-at-", "css-pseudo", "css-unit")):
            continue
        title = re.sub(r"\s+(property|shorthand|CSS property)$", "", entry["title"].strip())
        names = [t.strip() for t in re.split(r",|&|\band\b", title) if t.strip()]
        names = [n for n in names if _PROP_RE.match(n)]
        keywords = [k.strip() for k in (entry.get("keywords") or "").split(",")]
        for name in list(names):
            names += [k for k in keywords if _PROP_RE.match(k) and k.startswith(name + "-")]
        for name in names:
            out.setdefault(name, slug)
    return out


VALUE_TESTS: dict[str, str] = {
    "css-display-flex": r"^display$:^(inline-)?flex\b",
    "css-display-grid": r"^display$:^(inline-)?grid\b",
    "css-display-none": r"^display$:^none\b",
    "css-flex-direction": r"^flex-direction$:column",
    "css-flex-wrap": r"^flex-wrap$:wrap",
    "css-linear-gradient": r":linear-gradient\(",
    "css-radial-gradient": r":radial-gradient\(",
    "css-conic-gradient": r":conic-gradient\(",
    "css-function-clamp": r":\bclamp\(",
    "css-function-min": r":\bmin\(",
    "css-function-max": r":\bmax\(",
    "css-function-light-dark": r":\blight-dark\(",
    "css-unit-calc": r":\bcalc\(",
    "css-rgb": r":\brgb\(",
    "css-rgba": r":\brgba\(",
    "css-modern-color": r":\b(ok)?(lch|lab)\(",
    "css-intrinsic-size": r":\b(fit|min|max)-content\b",
    "css-sytem-ui": r":\b(system-ui|ui-serif|ui-sans-serif|ui-rounded|ui-monospace)\b",
    "css-variables": r"^--|:\bvar\(--",
    "css-important": r":!\s*important",
    "css-unit-rem": r":\d(\.\d+)?rem\b",
    "css-unit-vh": r":\d(\.\d+)?vh\b",
    "css-unit-vw": r":\d(\.\d+)?vw\b",
    "css-unit-vmin": r":\d(\.\d+)?vmin\b",
    "css-unit-vmax": r":\d(\.\d+)?vmax\b",
    "css-unit-ch": r":\d(\.\d+)?ch\b",
    "css-unit-ex": r":\d(\.\d+)?ex\b",
    "css-unit-initial": r":\binitial\b",
}
PSEUDO = re.compile(r"(::?)([a-z-]+)")
AT_MEDIA_FEATURES = {
    "prefers-color-scheme": "css-at-media-prefers-color-scheme",
    "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
    "orientation": "css-at-media-orientation",
    "hover": "css-at-media-hover",
    "device-pixel-ratio": "css-at-media-device-pixel-ratio",
}


def _declarations(block: str) -> list[tuple[str, str]]:
    out = []
    for decl in block.split(";"):
        if ":" in decl:
            prop, value = decl.split(":", 1)
            if prop.strip():
                out.append((prop.strip().lower(), value.strip().lower()))
    return out


def _scan_declarations(found: Found, decls: list[tuple[str, str]], line: int, col: int) -> None:
    props = _property_slugs()
    for prop, value in decls:
        text = f"{prop}: {value}"
        slug = props.get(prop)
        if slug:
            found.add(slug, line, col, text)
        for vslug, test in VALUE_TESTS.items():
            prop_re, _, value_re = test.partition(":")
            if prop_re and not re.search(prop_re, prop):
                continue
            if (value_re and re.search(value_re, value)) or (not value_re and prop_re):
                found.add(vslug, line, col, text)


def _scan_stylesheet(found: Found, css: str, line: int, col: int) -> None:
    if "/*" in css:
        found.add("css-comments", line, col, "/* ... */")
    # Comments become spaces, newlines kept, so offsets still give each rule's line.
    css = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), css, flags=re.S)

    def at(offset: int) -> int:
        return line + css.count("\n", 0, offset)

    for m in re.finditer(r"@([a-z-]+)([^{;]*)", css, re.I):
        name, prelude = m.group(1).lower(), m.group(2).lower()
        where = at(m.start())
        found.add(f"css-at-{name}", where, col, f"@{name}{prelude.rstrip()}"[:120])
        if name == "media":
            for feature, fslug in AT_MEDIA_FEATURES.items():
                if feature in prelude:
                    found.add(fslug, where, col, f"@media{prelude.rstrip()}")
    # Rule sets: selectors { declarations }, at-rule preludes excluded.
    for m in re.finditer(r"([^{}@;]+)\{([^{}]*)\}", css):
        selector, block = m.group(1).strip(), m.group(2)
        if selector.startswith(("from", "to")) or re.fullmatch(r"[\d.%,\s]+", selector):
            continue  # keyframe steps
        where = at(m.start(1) + len(m.group(1)) - len(m.group(1).lstrip()))
        for kind, name in PSEUDO.findall(selector):
            prefix = "css-pseudo-element-" if kind == "::" else "css-pseudo-class-"
            found.add(prefix + name.lower(), where, col, selector)
        _scan_declarations(found, _declarations(block), where, col)


def scan(html_text: str) -> Found:
    found = Found()

    def on_css(css: str, line: int, col: int, inline: bool) -> None:
        if inline:
            _scan_declarations(found, _declarations(css), line, col)
        else:
            _scan_stylesheet(found, css, line, col)

    scanner = _Scanner(found, on_css)
    try:
        scanner.feed(html_text)
        scanner.close()
    except Exception:  # html.parser is lenient; a broken document still gets a report
        pass
    if re.search(r"</body>", html_text, re.I):
        found.places.setdefault("html-body", [Place(1, 1, "<body>")])
    return found


# -- scoring and Mailpit's shape --------------------------------------------------------------


def _latest(versions: dict[str, str]) -> tuple[str, str]:
    """The newest tested version of a client (the data lists them oldest first)."""
    version = list(versions)[-1]
    return version, versions[version]


def _warning(entry: dict[str, Any], found: list[Place]) -> dict[str, Any] | None:
    nice = data()["nicenames"]
    results = []
    counts = {"yes": 0, "no": 0, "partial": 0}
    for family, platforms in entry["stats"].items():
        for platform, versions in platforms.items():
            version, support = _latest(versions)
            code, _, note = support.partition(" ")
            kind = {"y": "yes", "n": "no", "a": "partial"}.get(code)
            if kind is None:
                continue  # unknown support is left out of the score
            counts[kind] += 1
            results.append(
                {
                    "Name": f"{nice['family'].get(family, family)} "
                    f"{nice['platform'].get(platform, platform)} ({version})",
                    "Platform": platform,
                    "Family": family,
                    "Version": version,
                    "Support": kind,
                    "NoteNumber": note.lstrip("#").strip() if kind == "partial" else "",
                }
            )
    total = sum(counts.values())
    if not total or counts["yes"] == total:
        return None  # everyone supports it: nothing to warn about
    return {
        "Slug": entry["slug"],
        "Title": entry["title"],
        "Description": entry.get("description") or "",
        "URL": entry.get("url") or "",
        "Category": entry["category"],
        "Tags": entry.get("tags") or [],
        "Keywords": entry.get("keywords") or "",
        "Results": [r for r in results if r["Support"] != "yes"],
        "NotesByNumber": entry.get("notes_by_num") or {},
        "Score": {
            "Found": len(found),
            "Supported": round(counts["yes"] / total * 100, 2),
            "Partial": round(counts["partial"] / total * 100, 2),
            "Unsupported": round(counts["no"] / total * 100, 2),
        },
        "Places": [p.to_api() for p in found[:MAX_PLACES]],
    }


def platforms() -> dict[str, list[str]]:
    """platform -> client families tested on it (Mailpit's Platforms)."""
    nice = data()["nicenames"]
    out: dict[str, set[str]] = {}
    for entry in data()["data"]:
        for family, plats in entry["stats"].items():
            for platform in plats:
                out.setdefault(platform, set()).add(nice["family"].get(family, family))
    return {k: sorted(v) for k, v in sorted(out.items())}


def check(html_text: str) -> dict[str, Any]:
    """Mailpit's HTMLCheckResponse: Warnings, Platforms, Total; plus Places per warning."""
    found = scan(html_text)
    by_slug = {e["slug"]: e for e in data()["data"]}
    warnings = []
    for slug, places in found.places.items():
        if slug == "x-style-in-body":
            continue
        entry = by_slug.get(slug)
        if entry is None:
            continue
        warning = _warning(entry, places)
        if warning:
            warnings.append(warning)
    body_styles = found.places.get("x-style-in-body", [])
    if body_styles:
        warnings.append(_style_in_body(body_styles))
    if re.search(r"<script\b(?![^>]*application/(ld\+)?json)", html_text, re.I):
        warnings.append(_script(html_text))
    nodes = max(found.nodes, 1)
    partial = unsupported = 0.0
    for w in warnings:
        weight = min(w["Score"]["Found"], nodes) / nodes
        partial = max(partial, w["Score"]["Partial"] * weight)
        unsupported = max(unsupported, w["Score"]["Unsupported"] * weight)
    warnings.sort(
        key=lambda w: (
            -(w["Score"]["Unsupported"] + w["Score"]["Partial"]) * min(w["Score"]["Found"], nodes)
        )
    )
    return {
        "Warnings": warnings,
        "Platforms": platforms(),
        "Total": {
            "Tests": len(by_slug) + 2,
            "Nodes": found.nodes,
            "Supported": round(100 - partial - unsupported, 2),
            "Partial": round(partial, 2),
            "Unsupported": round(unsupported, 2),
        },
    }


def _style_in_body(places: list[Place]) -> dict[str, Any]:
    """A <style> inside <body>: Gmail and others drop or move it, so its rules may not apply."""
    base = _warning(data_entry("html-style"), places) or {}
    return {
        **base,
        "Slug": "html-style-in-body",
        "Title": "<style> element inside <body>",
        "Description": "A <style> element in the body is removed by several clients (Gmail "
        "keeps only <style> in <head>, some webmails drop both); put it in <head> or inline "
        "the rules.",
        "Score": {
            **base.get("Score", {"Supported": 0, "Partial": 0, "Unsupported": 100}),
            "Found": len(places),
        },
        "Places": [p.to_api() for p in places[:MAX_PLACES]],
    }


def data_entry(slug: str) -> dict[str, Any]:
    return next(e for e in data()["data"] if e["slug"] == slug)


def _script(html_text: str) -> dict[str, Any]:
    places = []
    for m in re.finditer(r"<script\b[^>]*>", html_text, re.I):
        line = html_text.count("\n", 0, m.start()) + 1
        col = m.start() - (html_text.rfind("\n", 0, m.start()) + 1) + 1
        places.append({"Line": line, "Column": col, "Text": m.group(0)[:120]})
    return {
        "Slug": "html-script",
        "Title": "<script> element",
        "Description": "JavaScript is not supported in any email client.",
        "URL": "",
        "Category": "html",
        "Tags": [],
        "Keywords": "",
        "Results": [],
        "NotesByNumber": {},
        "Score": {"Found": len(places), "Supported": 0, "Partial": 0, "Unsupported": 100},
        "Places": places[:MAX_PLACES],
    }
