"""The shape of one row of the settings table: a Config field with its flags, variable and help."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Option:
    """One setting: its flags, its environment variable and the Config field it fills."""

    flags: tuple[str, ...]
    env: str
    field: str
    help: str
    convert: Callable[[str, str], Any] | None = None  # (value, flag) -> field value
    boolean: bool = False  # an on/off switch: a bare flag, or MP_X=true/false
    metavar: str | None = None
    const: str | None = None  # the value of the flag given bare (e.g. --enable-prometheus)
    # A flag that may be given more than once: each value goes through convert (which returns
    # a tuple) and the tuples are joined; the variable holds them all, as convert splits them.
    repeat: bool = False


def setting(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    flags: tuple[str, ...],
    env: str,
    help: str,
    convert: Callable[[str, str], Any] | None = None,
    metavar: str | None = None,
    const: str | None = None,
    repeat: bool = False,
) -> Any:
    """A Config field declared with its flags, variable and help, so they cannot drift apart.

    Typed Any as dataclasses.field is, so `name: int = setting(500, ...)` type-checks.
    """
    row: dict[str, Any] = {"flags": flags, "env": env, "help": help, "convert": convert}
    row |= {"metavar": metavar, "const": const, "repeat": repeat}
    if factory is not None:
        return field(default_factory=factory, metadata={"option": row})
    return field(default=default, metadata={"option": row})


def options_of(cls: type) -> tuple[Option, ...]:
    """The table rows of a dataclass declared with setting(), in declaration order."""
    return tuple(
        # A bool field is an on/off switch; its annotation is a string under future annotations.
        Option(field=f.name, boolean=f.type in ("bool", bool), **f.metadata["option"])
        for f in fields(cls)
        if "option" in f.metadata
    )
