"""
Verbs: ``POST {dir}/_expand``, ``{dir}/_search``, ``{dir}/_create_index``, and
those that read the request themselves (``_bulk``, ``_changes``).

Verbs read the body as JSON whatever its Content-Type (``curl -d`` labels JSON
as a form). Each verb is a function ``(body: dict, directory: str) ->
(status, data)`` registered in VERBS; it raises ApiError for bad input.

A verb that may run long registers a ``plan(body, directory) -> seconds``
too: it checks the body as the verb would (the same 4xx) and estimates how
long the verb will take. Such a verb takes ``progress=None`` (called with
``(done, total)`` between steps) and runs as a job when asked with ``Prefer:
respond-async``, or when its estimate is past what a request may take
(``jobs.verbs``).
"""

from . import access, jsontext, keys
from .errors import ApiError, BadRequest
from .responses import error, json_response

VERBS = {}
PLANS = {}
# Verbs that read the request themselves (a streamed body, a query string):
# name -> (method, function(request, directory) -> response).
REQUEST_VERBS = {}
# How a verb with a plan is answered: set by the jobs app, which sits above
# this one (``jobs.verbs.respond(request, name, body, directory, owner)``);
# without it such a verb runs in the request like any other.
planned_responder = None


def verb(name, plan=None):
    """Register the decorated function as the verb ``name``, which must be one
    of the last segments ``objects.keys.VERBS`` reserves (so it is routed)."""
    if name not in keys.VERBS:
        raise ValueError(f"{name!r} is not in objects.keys.VERBS: no request would reach it")

    def register(function):
        VERBS[name] = function
        if plan is not None:
            PLANS[name] = plan
        return function

    return register


def only_when_asked(plan):
    """Mark a verb's plan as one whose verb never becomes a job by itself, only when
    asked with ``Prefer: respond-async`` (the plan then checks the body first); without
    the header the verb runs at once, its plan not called."""
    plan.only_when_asked = True
    return plan


def request_verb(name, method):
    """Register the decorated ``function(request, directory)`` as the verb
    ``name``, answering ``method`` only; it checks access itself."""
    if name not in keys.VERBS:
        raise ValueError(f"{name!r} is not in objects.keys.VERBS: no request would reach it")

    def register(function):
        REQUEST_VERBS[name] = (method, function)
        return function

    return register


def read_json_body(request):
    body = jsontext.loads(request.body or b"", "The body (a JSON object)")
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    return body


def dispatch(request, directory, name):
    if name in REQUEST_VERBS:
        method, function = REQUEST_VERBS[name]
        if request.method != method:
            return error(405, "method_not_allowed", f"{name} is a verb: use {method}.", headers={"Allow": method})
        return function(request, directory)
    if request.method != "POST":
        return error(405, "method_not_allowed", f"{name} is a verb: use POST.", headers={"Allow": "POST"})
    writer = access.check(request, write=True)
    function = VERBS.get(name)
    if function is None:
        raise ApiError(f"{name} is not available yet.", status=501, code="not_implemented")
    body = read_json_body(request)
    if name in PLANS and planned_responder is not None:
        return planned_responder(request, name, body, directory, writer)
    status, data = function(body, directory)
    return json_response(data, status=status)
