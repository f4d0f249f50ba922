"""
JSON text in and out: parsing and checking JSON from clients, and the
compact UTF-8 form every answer is written in (``dumps``).

Python's json module accepts what JSON and the databases do not: ``NaN`` and
``Infinity``, numbers that overflow to infinity (``1e400``), lone UTF-16
surrogates (``"\\ud800"``), and nesting deep enough to exhaust the stack.
PostgreSQL's jsonb also refuses ``\\u0000``. Every value istore stores or acts
on passes through ``check`` first, so all of these are a 400, never a 500.
"""
import json
import math

from .errors import BadRequest

MAX_DEPTH = 64


class InvalidJson(BadRequest):
    code = "invalid_json"


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def loads(text, what="The body"):
    """Parse ``text`` (str or bytes) and check the value; InvalidJson otherwise."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidJson(f"{what} nests deeper than {MAX_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson(f"{what} is not valid JSON ({exc}).") from None
    check(value, what)
    return value


def check(value, what="The JSON"):
    """Raise InvalidJson if ``value`` holds anything JSON or the database cannot store."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidJson(f"{what} nests deeper than {MAX_DEPTH} levels.")
        if isinstance(item, dict):
            for name, child in item.items():
                _check_string(name, what)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_string(item, what)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidJson(f"{what} holds a number JSON cannot represent ({item}).")
    return value


def _check_string(text, what):
    if "\x00" in text:
        raise InvalidJson(f"{what} holds a string with NUL (\\u0000), which cannot be stored.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson(f"{what} holds a string with a lone UTF-16 surrogate; send valid Unicode.") from None


def dumps(data):
    """``data`` as compact JSON text, non-ASCII kept as it is (every answer's form)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
