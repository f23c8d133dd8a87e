"""Fault injection for the SMTP server: Mailpit's chaos triggers plus our own, seedable."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from mailpit_py.config.errors import ConfigError

# Stage -> default reply code. Sender, Recipient and Authentication are Mailpit's (MAIL, RCPT,
# AUTH); Connect (instead of the greeting), Helo (HELO/EHLO) and Data (end of DATA) are ours.
DEFAULT_CODES: dict[str, int] = {
    "Sender": 451,
    "Recipient": 451,
    "Authentication": 535,
    "Connect": 421,
    "Helo": 421,
    "Data": 451,
}
_ALIASES = {
    "sender": "Sender",
    "mail": "Sender",
    "recipient": "Recipient",
    "recipients": "Recipient",
    "rcpt": "Recipient",
    "auth": "Authentication",
    "authentication": "Authentication",
    "connect": "Connect",
    "connection": "Connect",
    "helo": "Helo",
    "ehlo": "Helo",
    "data": "Data",
}
MAX_DELAY_MS = 60_000

SYNTAX_HELP = (
    "use comma-separated STAGE:CODE:PERCENT (stages Sender, Recipient, Authentication, "
    "Connect, Helo, Data; CODE 400-599), Drop:PERCENT and Delay:DURATION[:PERCENT] "
    "(DURATION like 250ms or 2s), e.g. Sender:451:10,Recipient:550:5,Delay:200ms"
)


class ChaosError(ValueError):
    """A trigger that cannot be used; the message says what is wrong."""


@dataclass(frozen=True)
class Trigger:
    """Fail a stage with `code` in `probability` percent of the attempts."""

    code: int
    probability: int = 0


@dataclass(frozen=True)
class Triggers:
    """Every trigger at once; the API and the flag both replace the whole set."""

    stages: dict[str, Trigger] = field(
        default_factory=lambda: {name: Trigger(code) for name, code in DEFAULT_CODES.items()}
    )
    drop: int = 0  # percent of commands answered by closing the connection
    delay_ms: int = 0  # added before a reply ...
    delay_probability: int = 0  # ... in this percent of the replies

    def to_api(self) -> dict[str, Any]:
        """Mailpit's JSON shape ({Stage: {ErrorCode, Probability}}) plus Drop and Delay."""
        out: dict[str, Any] = {
            name: {"ErrorCode": t.code, "Probability": t.probability}
            for name, t in self.stages.items()
        }
        out["Drop"] = {"Probability": self.drop}
        out["Delay"] = {"Milliseconds": self.delay_ms, "Probability": self.delay_probability}
        return out


def _percent(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ChaosError(f"{what}: the probability must be a whole number from 0 to 100")
    return value


def _code(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise ChaosError(f"{what}: the error code must be a number from 400 to 599")
    return value


def _int_text(text: str, what: str) -> int:
    if not re.fullmatch(r"\d{1,6}", text.strip()):
        raise ChaosError(f"{what}: {text!r} is not a whole number")
    return int(text)


def _millis(text: str, what: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text.lower())
    if not m:
        raise ChaosError(f"{what}: {text!r} is not a duration such as 250ms or 2s")
    ms = float(m.group(1)) * (1000 if m.group(2) == "s" else 1)
    if ms > MAX_DELAY_MS:
        raise ChaosError(f"{what}: at most {MAX_DELAY_MS // 1000}s")
    return round(ms)


def parse_triggers(text: str, source: str = "--chaos-triggers") -> Triggers:
    """Parse the flag's syntax; a ConfigError names the bad item and shows the syntax."""
    try:
        return _parse(text)
    except ChaosError as exc:
        raise ConfigError(f"{source}: {exc}; {SYNTAX_HELP}") from None


def _parse(text: str) -> Triggers:
    triggers = Triggers()
    stages = dict(triggers.stages)
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        key, *values = [v.strip() for v in item.split(":")]
        lower = key.lower()
        if lower == "drop":
            if len(values) != 1:
                raise ChaosError(f"{item!r}: Drop takes one value, Drop:PERCENT")
            triggers = replace(triggers, drop=_percent(_int_text(values[0], item), item))
        elif lower == "delay":
            if len(values) not in (1, 2):
                raise ChaosError(f"{item!r}: use Delay:DURATION or Delay:DURATION:PERCENT")
            prob = _percent(_int_text(values[1], item), item) if len(values) == 2 else 100
            triggers = replace(triggers, delay_ms=_millis(values[0], item), delay_probability=prob)
        elif lower in _ALIASES:
            if len(values) != 2:
                raise ChaosError(f"{item!r}: use {_ALIASES[lower]}:CODE:PERCENT")
            code = _code(_int_text(values[0], item), item)
            stages[_ALIASES[lower]] = Trigger(code, _percent(_int_text(values[1], item), item))
        else:
            raise ChaosError(f"{item!r}: unknown trigger {key!r}")
    return replace(triggers, stages=stages)


def from_api(body: dict[str, Any]) -> Triggers:
    """The PUT body: like Mailpit, what is missing is reset (probability 0, default code)."""
    stages = {}
    for name, default in DEFAULT_CODES.items():
        raw = body.get(name) or {}
        if not isinstance(raw, dict):
            raise ChaosError(f"{name} must be an object {{ErrorCode, Probability}}")
        code = raw.get("ErrorCode") or default
        stages[name] = Trigger(_code(code, name), _percent(raw.get("Probability", 0), name))
    unknown = set(body) - set(DEFAULT_CODES) - {"Drop", "Delay"}
    if unknown:
        raise ChaosError(f"unknown trigger {sorted(unknown)[0]!r}")
    drop = body.get("Drop") or {}
    delay = body.get("Delay") or {}
    if not isinstance(drop, dict) or not isinstance(delay, dict):
        raise ChaosError("Drop and Delay must be objects")
    ms = delay.get("Milliseconds", 0)
    if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= MAX_DELAY_MS:
        raise ChaosError(f"Delay.Milliseconds must be a whole number from 0 to {MAX_DELAY_MS}")
    return Triggers(
        stages=stages,
        drop=_percent(drop.get("Probability", 0), "Drop"),
        delay_ms=ms,
        delay_probability=_percent(delay.get("Probability", 100 if ms else 0), "Delay"),
    )


class Chaos:
    """The live triggers (swapped whole by the API) and one RNG; `seed` makes runs repeatable."""

    def __init__(self, triggers: Triggers, seed: int | None = None) -> None:
        self.triggers = triggers
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _roll(self, probability: int) -> bool:
        if probability <= 0:
            return False  # no draw: an idle trigger leaves the seeded sequence alone
        with self._lock:
            return self._rng.randrange(100) < probability

    def fire(self, stage: str) -> int | None:
        """The reply code when the stage's trigger fires this time, else None."""
        trigger = self.triggers.stages[stage]
        return trigger.code if self._roll(trigger.probability) else None

    def drop(self) -> bool:
        return self._roll(self.triggers.drop)

    def delay(self) -> float:
        """Seconds to wait before the next reply (0 when the Delay trigger does not fire)."""
        t = self.triggers
        return t.delay_ms / 1000 if t.delay_ms and self._roll(t.delay_probability) else 0.0

    def to_api(self) -> dict[str, Any]:
        return self.triggers.to_api()

    def update_from_api(self, body: dict[str, Any]) -> dict[str, Any]:
        self.triggers = from_api(body)  # one assignment: SMTP sessions see old or new, whole
        return self.to_api()
