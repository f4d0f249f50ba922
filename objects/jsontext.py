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
import re

from .errors import BadRequest

MAX_DEPTH = 64


class InvalidJson(BadRequest):
    code = "invalid_json"


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


# Escapes of NUL and of UTF-16 surrogates, and (once digits are 0, "E" is "e" and "+" is gone)
# what a float overflowing to infinity (1.8e308) needs: an exponent of three digits, or with at most
# 99 an integer part of 210 digits (JSON has no leading zeros).
_ESCAPES = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_NUMBERS = bytes.maketrans(b"123456789E", b"000000000e")
_HUGE_EXPONENT, _HUGE_INTEGER = b"e000", b"0" * 210
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads(text, what="The body"):
    """Parse ``text`` (str or bytes) and check the value; InvalidJson otherwise."""
    try:
        decoded = text
        if isinstance(text, (bytes, bytearray)):  # as json.loads reads bytes
            decoded = text.decode(json.detect_encoding(text), "surrogatepass")
        if decoded.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", decoded, 0)
        value = _DECODER.decode(decoded)  # json.loads would make a decoder per call
    except RecursionError:
        raise InvalidJson(f"{what} nests deeper than {MAX_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson(f"{what} is not valid JSON ({exc}).") from None
    if may_fail_check(text):
        check(value, what)
    return value


def may_fail_check(text):
    """False when the value parsed from the JSON ``text`` is sure to pass ``check``, read off the text.

    Walking a parsed value costs more than parsing it (every ``_bulk`` line
    is parsed and checked, its metadata again once merged). ASCII text
    without NUL decodes to itself (no raw surrogate, no UTF-16), so a
    refused string needs an escape ``_ESCAPES`` finds, a non-finite number
    one of the digit runs above (NaN and Infinity are refused by the
    parser), and nesting deeper than ``MAX_DEPTH`` that many brackets.
    Anything else, non-ASCII text included, is walked as before: this only
    ever skips a walk that would have found nothing.
    """
    if isinstance(text, str):
        if not text.isascii():
            return True
        text = text.encode("ascii")
    if not text.isascii() or b"\x00" in text or text.count(b"{") + text.count(b"[") >= MAX_DEPTH:
        return True
    if b"\\u" in text and _ESCAPES.search(text):
        return True
    numbers = text.translate(_NUMBERS, b"+")
    return _HUGE_EXPONENT in numbers or _HUGE_INTEGER in numbers


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
            if depth < MAX_DEPTH and all(type(child) is float for child in item):
                # A vector (1280 numbers for _search): checked in one pass, not one step each.
                if not all(map(math.isfinite, item)):
                    bad = next(child for child in item if not math.isfinite(child))
                    raise InvalidJson(f"{what} holds a number JSON cannot represent ({bad}).")
            else:
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
