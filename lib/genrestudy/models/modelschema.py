"""The schema a model file's header is checked against before anything uses it: each field's type and range.

A :class:`Field` says what a header value must be and, given a value, why it is not (or
None). :mod:`genrestudy.models.modelfile` holds the fields every kind shares; each kind registers
its own with :func:`genrestudy.models.modelfile.register_kind`. A JSON header can hold anything
(``Infinity``, ``"6"``, ``6.7``, ``-5``, a list where an object belongs): every such value is
refused here, in one line naming the field, instead of failing later inside a loader.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class Field:
    """One header field: ``expected`` (what it must be, in words) and ``why_not(value)`` (None when fine)."""

    expected: str
    why_not: Callable[[object], str | None]

    def problem(self, value) -> str | None:
        """Why ``value`` does not fit this field (one line), or None."""
        return self.why_not(value)


def shown(value, limit: int = 60) -> str:
    """``value`` as JSON, cut to ``limit`` characters (every character printable: json escapes the rest)."""
    return json.dumps(value, default=str)[:limit]


def _must(expected: str, ok: Callable[[object], bool]) -> Field:
    return Field(expected, lambda v: None if ok(v) else f"must be {expected}, got {shown(v)}")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def integer(low: int, high: int) -> Field:
    """An integer (not a bool, not ``6.0``) in ``low..high``."""
    return _must(f"an integer from {low} to {high}", lambda v: is_int(v) and low <= v <= high)


def number(low: float, high: float, *, above: bool = False, optional: bool = False) -> Field:
    """A finite number in ``[low, high]`` (``(low, high]`` when ``above``); None too when ``optional``."""
    words = f"a number {'above' if above else 'from'} {low:g} {'and at most' if above else 'to'} {high:g}" + \
        (" or null" if optional else "")
    return _must(words, lambda v: (optional and v is None) or (
        is_number(v) and (v > low if above else v >= low) and v <= high))


def text(choices: Iterable[str] | None = None, *, pattern: str | None = None, optional: bool = False,
         max_length: int = 4096) -> Field:
    """A string (of ``choices``, or matching ``pattern``); None too when ``optional``."""
    choices = tuple(choices) if choices is not None else None
    words = (f"one of {', '.join(choices)}" if choices else "text") + (" or null" if optional else "")
    match = re.compile(pattern).fullmatch if pattern else None
    return _must(words, lambda v: (optional and v is None) or (
        isinstance(v, str) and len(v) <= max_length and (choices is None or v in choices)
        and (match is None or bool(match(v)))))


def flag() -> Field:
    return _must("true or false", lambda v: isinstance(v, bool))


def anything_json_object() -> Field:
    return _must("an object", lambda v: isinstance(v, dict))


def names(*, at_least: int = 1, at_most: int = 100_000, what: str = "names") -> Field:
    """A list of distinct non-empty strings."""
    expected = f"{'two' if at_least == 2 else at_least} or more distinct {what}"
    return _must(expected, lambda v: isinstance(v, list) and at_least <= len(v) <= at_most
                 and all(isinstance(c, str) and c for c in v) and len(set(v)) == len(v))


def table(key_ok: Callable[[str], bool], value: Field, expected: str) -> Field:
    """An object whose keys pass ``key_ok`` and whose values fit ``value``."""
    return _must(expected, lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and key_ok(k) and value.problem(x) is None for k, x in v.items()))


def params_of(cls, fields: dict[str, Field], *, what: str, check: Callable[[dict], str | None] | None = None) -> Field:
    """An object of the dataclass ``cls``'s fields, each fitting ``fields`` (which must cover them all),
    that ``cls(**value)`` accepts; ``check(value)`` adds a test across fields."""
    missing = {f.name for f in dataclasses.fields(cls)} - set(fields)
    if missing:
        raise ValueError(f"the schema of {cls.__name__} lacks {sorted(missing)}")

    def why_not(value) -> str | None:
        if not isinstance(value, dict):
            return f"must be an object of {what}, got {shown(value)}"
        unknown = sorted(shown(str(k), 40) for k in set(value) - set(fields))
        if unknown:
            return f"holds unknown {what} {', '.join(unknown)}"
        for name, item in value.items():
            reason = fields[name].problem(item)
            if reason:
                return f"holds bad {what}: {name} {reason}"
        reason = check(value) if check else None
        if not reason:
            try:
                cls(**value)
            except (TypeError, ValueError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"holds bad {what}: {reason}" if reason else None

    return Field(f"an object of {what}", why_not)
