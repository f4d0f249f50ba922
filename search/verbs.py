"""
The similarity verbs of §8: ``POST {dir}/_search`` and ``{dir}/_create_index``.

    {"similar": {"to": KEY, "by": FIELD, "limit": N, "max_distance": D}}        _search
    {"similar": {"vector": [...], "by": FIELD, "limit": N, "max_distance": D}}  _search
    {"similar": {"by": FIELD}}                                                  _create_index

``by`` names a metadata field, or a built-in feature (``search.spaces``:
``_embedding``, ``_phash``, ``_pdq``), whose query rows for ``to`` come from
the app that computes them.
"""
from objects.models import Item, hash_key
from objects.verbs import only_when_asked, verb
from objects import keys as object_keys

from . import ann, spaces
from .models import MAX_FIELD_CHARS, Vector
from .vectors import as_unit, unpack
from objects.errors import BadRequest

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
SEARCH_FIELDS = {"to", "vector", "by", "limit", "max_distance"}
INDEX_FIELDS = {"by"}

EXAMPLE = '{"similar": {"to": "/dir/key", "by": "vec", "limit": 10}}'


class InvalidSearch(BadRequest):
    code = "invalid_search"


def _similar(body, allowed, example):
    similar = body.get("similar")
    if not isinstance(similar, dict):
        raise InvalidSearch(f"The body needs a 'similar' object, for example {example}.")
    unknown = sorted(set(similar) - allowed)
    if unknown:
        raise InvalidSearch(
            f"Unknown field(s) in 'similar': {', '.join(map(repr, unknown))}; "
            f"the fields are {', '.join(sorted(allowed))}."
        )
    by = similar.get("by")
    if not isinstance(by, str) or not by:
        raise InvalidSearch(
            "'similar' needs 'by': the name of the metadata field that holds the vectors, "
            f"for example {example}."
        )
    if len(by) > MAX_FIELD_CHARS:
        raise InvalidSearch(f"'by' names a field of at most {MAX_FIELD_CHARS} characters.")
    return similar, by


def _limit(similar):
    limit = similar.get("limit", DEFAULT_LIMIT)
    if type(limit) is float and limit.is_integer():
        limit = int(limit)
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise InvalidSearch(f"'limit' must be an integer from 1 to {MAX_LIMIT}, not {limit!r}.")
    return limit


def _max_distance(similar):
    value = similar.get("max_distance")
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 <= value <= 1:
        raise InvalidSearch(f"'max_distance' must be a number from 0 to 1, not {value!r}.")
    return float(value)


def _to_item(similar):
    to = similar["to"]
    if not isinstance(to, str) or not to:
        raise InvalidSearch("'to' must be the key of an item, for example \"/dir/key\".")
    object_keys.validate_key(to)
    item = Item.objects.filter(key_hash=hash_key(to)).first()
    if item is None:
        raise InvalidSearch(f"'to' names {to!r}, which is not registered.", code="unknown_to")
    return item


def query_rows(similar, by):
    """``(dim, rows)``: the query's length and its rows (a 2-D array), from
    'vector' or from the 'to' item."""
    has_to, has_vector = "to" in similar, "vector" in similar
    if has_to == has_vector:
        raise InvalidSearch(
            "'similar' needs exactly one of 'to' (the key of an item whose metadata holds the vector) "
            "or 'vector' (a list of numbers)."
        )
    builtin = spaces.BUILTIN.get(by)
    if builtin is not None:
        rows = builtin.parse_vector(similar["vector"]) if has_vector else builtin.query_rows(_to_item(similar), by)
        return builtin.dim, rows
    unit = _query_vector(similar, by, has_vector)
    return len(unit), unit[None, :]


def _query_vector(similar, by, has_vector):
    """The query as a unit float64 vector, from 'vector' or from the 'to' item."""
    if has_vector:
        value = similar["vector"]
        if not isinstance(value, list) or not value:
            raise InvalidSearch("'vector' must be a non-empty list of numbers.")
        if any(type(number) not in (int, float) for number in value):
            raise InvalidSearch("'vector' must hold only numbers (no strings, booleans, nulls or lists).")
        unit = as_unit(value)
        if unit is None:
            raise InvalidSearch("'vector' must be finite and not all zeros: a zero vector has no direction.")
        return unit
    item = _to_item(similar)
    to = item.key
    row = Vector.objects.filter(item_id=item.id, field=by).values_list("vector", "dim").first()
    if row is None:
        value = item.metadata.get(by) if isinstance(item.metadata, dict) else None
        found = "has no such field" if value is None else "is not a usable vector"
        raise InvalidSearch(
            f"The item {to!r} has no vector to search with: its metadata[{by!r}] {found} "
            "(a non-empty list of numbers, not all zero).",
            code="no_vector",
        )
    blob, dim = row
    return unpack(bytes(blob), dim).astype("float64")


def _search_request(body):
    """``(by, limit, max_distance, dim, rows)`` of a _search body; InvalidSearch when bad."""
    similar, by = _similar(body, SEARCH_FIELDS, EXAMPLE)
    limit = _limit(similar)
    max_distance = _max_distance(similar)
    return (by, limit, max_distance, *query_rows(similar, by))


@only_when_asked
def plan_search(body, directory):
    """Check a _search body. A search answers within a request (an index, or an exact scan at
    tens of millions of numbers a second), so it runs as a job only when asked to."""
    _search_request(body)
    return 0


@verb("_search", plan=plan_search)
def search(body, directory, progress=None):
    by, limit, max_distance, dim, rows = _search_request(body)
    results = []
    for item, distance in ann.search(directory, by, dim, rows, limit, max_distance):
        data = item.as_dict()
        data["_distance"] = distance
        results.append(data)
    return 200, results


# Vectors read and indexed per second by _create_index on a 2-core machine
# (benchmarks/README.md): how long a build will take, to decide whether it
# must run as a job (jobs.verbs).
INDEX_RATE = 2000


def _index_field(body):
    return _similar(body, INDEX_FIELDS, '{"similar": {"by": "vec"}}')[1]


def plan_index(body, directory):
    """Check a _create_index body; the seconds the build will take (NotFound without vectors)."""
    return sum(ann.sizes(directory, _index_field(body)).values()) / INDEX_RATE


def _overall(progress, total):
    """ann.build's progress by stage and vector length as one ``(done, total)``:
    each vector counts once read and once indexed."""
    state = {"stage": None, "base": 0, "stage_total": 0, "done": 0}

    def report(stage, done, stage_total):
        if stage != state["stage"] or done < state["done"]:
            if state["stage"] is not None:
                state["base"] += state["stage_total"]
            state["stage"], state["stage_total"] = stage, stage_total
        state["done"] = done
        progress(state["base"] + done, total)

    return report


@verb("_create_index", plan=plan_index)
def create_index(body, directory, progress=None):
    by = _index_field(body)
    report = None
    if progress is not None:
        total = 2 * sum(ann.sizes(directory, by).values())
        progress(0, total)
        report = _overall(progress, total)
    built = ann.build(directory, by, progress=report)
    return 201, {
        "indexed": sum(built.values()),
        "dir": directory,
        "by": by,
        "dims": {str(dim): count for dim, count in built.items()},
        "library": ann.LIBRARY,
    }
