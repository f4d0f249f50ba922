"""
Parameter schema types for ``?apply=`` operations.

Each operation in ``processing.operations`` declares its parameters as a tuple of
the types below (``Int``, ``Float``, ``Rects``) plus optional cross-parameter
``Constraint`` objects.  ``parse_params`` reads them from the query, and every
error message comes from here, so all operations report mistakes the same way:
``BadParameter`` whose detail names the operation, the parameter, what was
expected and what was received.

Values are parsed strictly (no ``inf``/``nan``, no ``1_000``, no surrounding
spaces) so that the canonical form used in cache keys is unambiguous:
``w=0320`` and ``w=320`` give the same canonical ``320``; ``sec=1.50`` and
``sec=1.5`` give ``1.5``.
"""
import math
import re

from .errors import BadParameter

REQUIRED = object()

# Bounded digit counts: reject absurd inputs before int()/float() see them
# (Python refuses to int() more than 4300 digits, with a ValueError we would
# otherwise have to special-case).
_INT_RE = re.compile(r"[+-]?\d{1,15}")
_FLOAT_RE = re.compile(r"[+-]?(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})(?:[eE][+-]?\d{1,3})?")


def getlist(query, name):
    """All values of ``name`` in ``query`` (a QueryDict, or any mapping)."""
    if hasattr(query, "getlist"):
        return list(query.getlist(name))
    value = query.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _fmt_number(value):
    """Canonical text of a parsed number: ints as ints, floats via repr (shortest round-trip)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value) if abs(value) < 1e15 else value
    return repr(value) if isinstance(value, float) else str(value)


def _bound(value):
    """A bound may be a callable (read from settings at parse time, so tests can override it)."""
    return value() if callable(value) else value


class Param:
    """One named parameter: parses the raw query string, checks its range, canonicalizes it."""

    kind = "a value"

    def __init__(self, name, *, min=None, max=None, gt=None, aliases=(), default=REQUIRED, example=None):
        self.name = name
        self.min, self.max, self.gt = min, max, gt
        self.aliases = tuple(aliases)
        self.default = default
        self.example = example

    @property
    def names(self):
        return (self.name,) + self.aliases

    def describe(self):
        """Human description of the accepted values, used in every error message."""
        parts = []
        if self.gt is not None:
            parts.append(f"> {_fmt_number(_bound(self.gt))}")
        lo, hi = _bound(self.min), _bound(self.max)
        if lo is not None and hi is not None:
            parts.append(f"from {_fmt_number(lo)} to {_fmt_number(hi)}")
        elif lo is not None:
            parts.append(f">= {_fmt_number(lo)}")
        elif hi is not None:
            parts.append(f"<= {_fmt_number(hi)}")
        return " ".join([self.kind] + parts)

    def error(self, op, problem):
        hint = f", e.g. {self.name}={self.example}" if self.example is not None else ""
        return BadParameter(f"apply={op}: parameter {self.name} {problem}; it must be {self.describe()}{hint}")

    def convert(self, raw):  # pragma: no cover - abstract
        raise NotImplementedError

    def parse(self, op, raws):
        """Parse the raw values (a list of strings) of this parameter for operation ``op``."""
        if not raws:
            if self.default is REQUIRED:
                return self._missing(op)
            return self.default
        if len(raws) > 1:
            raise self.error(op, f"is given {len(raws)} times; give it once")
        raw = raws[0]
        if raw == "":
            raise self.error(op, "is empty")
        value = self.convert(raw)
        if value is None:
            raise self.error(op, f"cannot be {raw[:40]!r}")
        self.check_range(op, value, raw)
        return value

    def _missing(self, op):
        raise self.error(op, "is missing")

    def check_range(self, op, value, raw):
        lo, hi, gt = _bound(self.min), _bound(self.max), _bound(self.gt)
        if (gt is not None and not value > gt) or (lo is not None and value < lo) or (
            hi is not None and value > hi
        ):
            raise self.error(op, f"is out of range (got {raw[:40]!r})")

    def canonical(self, value):
        return _fmt_number(value)


class Int(Param):
    kind = "an integer"

    def convert(self, raw):
        return int(raw) if _INT_RE.fullmatch(raw) else None


class Float(Param):
    kind = "a number"

    def convert(self, raw):
        if not _FLOAT_RE.fullmatch(raw):
            return None
        value = float(raw)
        return value if math.isfinite(value) else None


class Choice(Param):
    """One of a fixed set of words (case-insensitive); ``canonical`` maps synonyms together."""

    def __init__(self, name, choices, *, canonical=None, **kw):
        super().__init__(name, **kw)
        self.choices = tuple(choices)
        self._canonical = canonical or (lambda v: v)
        self.kind = "one of " + ", ".join(self.choices)

    def convert(self, raw):
        raw = raw.lower()
        return raw if raw in self.choices else None

    def canonical(self, value):
        return self._canonical(value)


class Rects(Param):
    """Repeatable list of rectangles, each ``x1/10,y1/10,x2/50,y2/50,r/255,g/0,b/0``.

    x1..y2 are required integers with x1 <= x2 and y1 <= y2 (corners inclusive);
    r, g, b are 0..255 and default to 0.  At most ``max_count`` rectangles.
    """

    kind = "one or more rectangles x1/10,y1/10,x2/50,y2/50,r/255,g/0,b/0"
    FIELDS = ("x1", "y1", "x2", "y2", "r", "g", "b")
    COLOR_DEFAULT = {"r": 0, "g": 0, "b": 0}
    COORD_LIMIT = 10**9

    def __init__(self, name, *, max_count=1000, **kw):
        super().__init__(name, **kw)
        self.max_count = max_count

    def describe(self):
        return (f"{self.kind} (comma-separated name/value pairs; x1<=x2, y1<=y2, corners inclusive; "
                f"r,g,b 0..255, default 0; repeat {self.name}= for more, at most {self.max_count})")

    def parse(self, op, raws):
        if not raws:
            return self._missing(op)
        if len(raws) > self.max_count:
            raise self.error(op, f"is given {len(raws)} times, more than {self.max_count}")
        return tuple(self._one(op, raw) for raw in raws)

    def _one(self, op, raw):
        shown = raw[:80]
        found = {}
        for part in raw.split(","):
            key, sep, text = part.strip().partition("/")
            if not sep or key not in self.FIELDS:
                raise self.error(op, f"has a bad item {part[:20]!r} in {shown!r}; "
                                     f"items are name/value with names {', '.join(self.FIELDS)}")
            if key in found:
                raise self.error(op, f"gives {key} twice in {shown!r}")
            if not _INT_RE.fullmatch(text):
                raise self.error(op, f"has {key}/{text[:20]} in {shown!r}: not an integer")
            found[key] = int(text)
        missing = [k for k in self.FIELDS[:4] if k not in found]
        if missing:
            raise self.error(op, f"lacks {', '.join(missing)} in {shown!r}")
        values = {**self.COLOR_DEFAULT, **found}
        for key in ("r", "g", "b"):
            if not 0 <= values[key] <= 255:
                raise self.error(op, f"has {key}/{values[key]} in {shown!r}: colors are 0..255")
        for key in self.FIELDS[:4]:
            if abs(values[key]) > self.COORD_LIMIT:
                raise self.error(op, f"has {key}/{values[key]} in {shown!r}: coordinates are at most "
                                     f"{self.COORD_LIMIT} in absolute value")
        if values["x1"] > values["x2"] or values["y1"] > values["y2"]:
            raise self.error(op, f"has x1 > x2 or y1 > y2 in {shown!r}")
        return tuple(values[k] for k in self.FIELDS)

    def canonical(self, value):
        return ";".join(",".join(f"{k}/{v}" for k, v in zip(self.FIELDS, rect)) for rect in value)


class Constraint:
    """A rule over several already-parsed parameters of one operation."""

    def check(self, op, values):  # pragma: no cover - abstract
        raise NotImplementedError


class Less(Constraint):
    """``values[a] < values[b]``: e.g. crop's x1 < x2."""

    def __init__(self, a, b, why=""):
        self.a, self.b, self.why = a, b, why

    def check(self, op, values):
        if not values[self.a] < values[self.b]:
            raise BadParameter(f"apply={op}: parameter {self.b} must be greater than {self.a} "
                             f"(got {self.a}={values[self.a]}, {self.b}={values[self.b]}){self.why}")


class MaxProduct(Constraint):
    """``values[a] * values[b] <= limit()`` when both are non-zero: output-size limits known up front."""

    def __init__(self, a, b, limit, what="output pixels"):
        self.a, self.b, self.limit, self.what = a, b, limit, what

    def check(self, op, values):
        limit = _bound(self.limit)
        product = values[self.a] * values[self.b]
        if product > limit:
            raise BadParameter(f"apply={op}: parameters {self.a} x {self.b} = {product} {self.what}, "
                             f"more than the limit of {limit}; ask for a smaller size")


def parse_params(op, schema, query, constraints=(), skip_constraints=None):
    """Parse every parameter of ``schema`` from ``query`` for operation ``op``.

    Returns ``{name: value}``.  ``constraints`` are checked afterwards, unless
    ``skip_constraints(values)`` is true (used for documented pass-through
    cases such as crop with all coordinates 0).  Raises ``BadParameter``.
    """
    values = {}
    for param in schema:
        raws = []
        for name in param.names:
            raws = getlist(query, name)
            if raws:
                break  # the primary name wins over an alias
        values[param.name] = param.parse(op, raws)
    if not (skip_constraints and skip_constraints(values)):
        for constraint in constraints:
            constraint.check(op, values)
    return values


def canonical_params(schema, values):
    """Canonical ``name=value`` text of parsed ``values``, sorted by name (for cache keys)."""
    by_name = {p.name: p for p in schema}
    return "&".join(f"{name}={by_name[name].canonical(values[name])}" for name in sorted(values))
