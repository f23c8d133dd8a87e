"""Safe YAML whose mappings remember their line, so a config file's errors can point at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mailpit_py.config.errors import ConfigError


class Located(dict[str, Any]):
    """A YAML mapping with the line (1-based) it starts on; keys are text."""

    line = 0


class _Loader(yaml.SafeLoader):
    """Safe YAML (no object construction) whose mappings are Located."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    out = Located({str(k): v for k, v in loader.construct_mapping(node, deep=True).items()})
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse_yaml(text: str, origin: str, error: type[ValueError] = ConfigError) -> Any:
    """The YAML document in `text`; `error` (ConfigError, or a feature's own) names `origin`
    and the line and column of a syntax error."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise error(f"{origin}{where}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{origin}: not valid YAML: {exc}") from None


def read_yaml(path: str, flag: str) -> Any:
    """The YAML file at `path`; ConfigError names the flag when it cannot be read."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{flag}: {path!r} is not UTF-8 text") from None
    return parse_yaml(text, path)


def line_of(value: Any, default: int = 0) -> int:
    """The line a Located mapping starts on, else `default` (scalars and lists keep none)."""
    return getattr(value, "line", 0) or default
