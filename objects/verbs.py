"""
Verbs: ``POST {dir}/_expand``, ``{dir}/_search``, ``{dir}/_create_index`` (§8).

Verbs read the body as JSON whatever its Content-Type (``curl -d`` labels JSON
as a form). Each verb is a function ``(body: dict, directory: str) ->
(status, data)`` registered in VERBS; it raises ApiError for bad input.
"""

from . import access, jsontext, keys
from .errors import ApiError, BadRequest
from .responses import error, json_response

VERBS = {}


def verb(name):
    """Register the decorated function as the verb ``name``, which must be one
    of the last segments ``objects.keys.VERBS`` reserves (so it is routed)."""
    if name not in keys.VERBS:
        raise ValueError(f"{name!r} is not in objects.keys.VERBS: no request would reach it")

    def register(function):
        VERBS[name] = function
        return function

    return register


def read_json_body(request):
    body = jsontext.loads(request.body or b"", "The body (a JSON object)")
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    return body


def dispatch(request, directory, name):
    if request.method != "POST":
        return error(405, "method_not_allowed", f"{name} is a verb: use POST.", headers={"Allow": "POST"})
    access.check(request, write=True)
    function = VERBS.get(name)
    if function is None:
        raise ApiError(f"{name} is not available yet.", status=501, code="not_implemented")
    status, data = function(read_json_body(request), directory)
    return json_response(data, status=status)
