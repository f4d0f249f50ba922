"""
An OpenAPI 3.1 description of istore's HTTP API, served at ``/_schema/``.

Why it is built in code rather than kept as a YAML file: the parts that
change as istore grows are read from the registries that define them, so the
description cannot drift from the server:

- the ``?apply=`` operations, their parameters (integer / number / rectangle
  list, ranges) and ``format=`` / ``quality=`` come from
  ``processing.operations.REGISTRY`` and ``processing.params``;
- the verbs come from ``objects.keys.VERBS``; the source schemes from the
  resolver registry (``objects.sources.schemes()``);
- the listing and key limits from ``objects.listing`` and ``objects.keys``.

OpenAPI path templates cannot say "this parameter spans several segments",
so a key is described as the path parameter ``{key}`` with
``x-istore-multi-segment: true``: the whole request path, percent-decoded
once, slashes included. Tools that generate requests from the
description (schemathesis and the fuzz test in ``tests/security``) percent-
encode what they put in ``{key}``, which is a valid key too.

The document is built once per process and cached: it depends on code, not on
requests or settings that change at run time (the limits it quotes are read
when it is first built).
"""
import functools

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import jsontext, keys, listing, verbs
from .responses import error

OPENAPI_VERSION = "3.1.0"
ERROR_STATUSES = {
    "400": "Bad input: invalid key (not UTF-8, control character, over 4096 bytes), metadata not a JSON "
           "object or too large, unknown scheme, bad listing or processing parameter.",
    "401": "Writes (and reads when ISTORE_PUBLIC_READ=false) need 'Authorization: Token <key>'.",
    "403": "A source the address rules or the file roots refuse.",
    "404": "Not registered, no content, reserved path, or source 404.",
    "405": "Method not supported on this path.",
    "413": "Upload, body, source or image pixels over a limit.",
    "415": "The source is not an image (or not a video, for frame).",
    "416": "Range outside the content.",
    "422": "frame: sec past the end of the video.",
    "502": "The source failed or is unreachable.",
    "504": "The source (or ffmpeg) timed out.",
    "508": "self:// nesting deeper than ISTORE_MAX_SELF_DEPTH, or a cycle.",
}


def _error_ref():
    return {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _errors(*statuses):
    return {status: {"description": ERROR_STATUSES[status], **_error_ref()} for status in statuses}


def _json(schema_ref, description):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _param_schema(param):
    """JSON Schema of one ``processing.params`` parameter."""
    from processing import params as types

    def bound(value):
        return value() if callable(value) else value

    if isinstance(param, types.Rects):
        return {"type": "string", "pattern": r"^[a-z0-9/,+-]+$"}
    if isinstance(param, types.Choice):
        return {"type": "string", "enum": list(param.choices)}
    schema = {"type": "integer" if isinstance(param, types.Int) else "number"}
    if param.min is not None:
        schema["minimum"] = bound(param.min)
    if param.max is not None:
        schema["maximum"] = bound(param.max)
    if param.gt is not None:
        schema["exclusiveMinimum"] = bound(param.gt)
    return schema


def operation_parameters():
    """Query parameters of ``?apply=``: ``apply`` itself, every operation's parameters, format, quality.

    A parameter shared by several operations (``w``, ``h``, ``sigma``) is
    described once, naming every operation that reads it.
    """
    try:
        from processing.operations import FORMAT, FRAME, QUALITY, REGISTRY
    except ImportError:  # pragma: no cover - processing ships with istore
        return []
    found = {}
    for name, spec in REGISTRY.items():
        for param in spec.params:
            for alias in param.names:
                entry = found.setdefault(alias, {"param": param, "ops": []})
                entry["ops"].append(name)
    parameters = [{
        "name": "apply",
        "in": "query",
        "required": False,
        "description": "One processing operation (docs/processing.md). Bad input is 400 naming the parameter; a source "
                       "that is not an image (or video) is 415.",
        "schema": {"type": "string", "enum": list(REGISTRY)},
    }]
    for alias, entry in sorted(found.items()):
        param = entry["param"]
        description = f"Parameter of apply={', apply='.join(entry['ops'])}."
        if alias != param.name:
            description += f" Alias of {param.name}."
        if param.example is not None:
            description += f" Example: {alias}={param.example}."
        parameter = {"name": alias, "in": "query", "required": False, "description": description,
                     "schema": _param_schema(param)}
        if getattr(param, "max_count", None):
            parameter["explode"] = True
            parameter["schema"] = {"type": "array", "items": _param_schema(param), "maxItems": param.max_count}
        parameters.append(parameter)
    for param, what in ((FORMAT, "Output format (default: the source's; frame: jpeg); auto: AVIF, WebP or the "
                                 "source's by the Accept header, with Vary: Accept."),
                        (QUALITY, "Lossy output quality."),
                        (FRAME, "One frame of an animated image (from 0), as a still.")):
        parameters.append({"name": param.name, "in": "query", "required": False, "description": what,
                           "schema": _param_schema(param)})
    parameters += [
        {"name": "exp", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
         "description": "Signed URLs: the URL expires at this Unix time (part of what is signed)."},
        {"name": "sig", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Signed URLs (ISTORE_URL_SIGNING_KEYS): the last parameter, the unpadded base64url "
                        "HMAC-SHA256 of the path and query as sent before it."},
    ]
    return parameters


def _schemes():
    from . import sources  # the resolver registry knows the schemes

    return sorted(sources.schemes())


def _key_parameter():
    return {
        "name": "key",
        "in": "path",
        "required": True,
        "description": (
            "The key: the request path percent-decoded once, without the query. It spans "
            "several segments; slashes are significant and never merged. Valid UTF-8, at most "
            f"{keys.MAX_KEY_BYTES} bytes, no NUL or C0/C1 control characters. A key ending in '/' is a "
            "directory. The first '/' followed by '<scheme>://' splits it into a directory and an "
            f"embedded source URL (schemes: {', '.join(_schemes())}). A first segment starting "
            f"with '_' and a last segment that is one of {', '.join(keys.VERBS)} are reserved."
        ),
        "schema": {"type": "string", "maxLength": keys.MAX_KEY_BYTES},
        "x-istore-multi-segment": True,
    }


def _header(name, description, schema=None):
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _read_parameters():
    return [
        _key_parameter(),
        {"name": "meta", "in": "query", "required": False,
         "description": "1 or true: the item's JSON instead of its content (on a directory: its own item).",
         "schema": {"type": "string", "enum": ["1", "true"]}},
        {"name": "limit", "in": "query", "required": False,
         "description": "Directory listing: at most this many entries; a Link rel=next header follows "
                        "when more remain. Without it the whole listing is streamed.",
         "schema": {"type": "integer", "minimum": 1, "maximum": listing.MAX_LIMIT}},
        {"name": "after", "in": "query", "required": False,
         "description": "Directory listing: start after this key (exclusive), or after everything under "
                        "this folded prefix.",
         "schema": {"type": "string", "pattern": "^/", "maxLength": keys.MAX_KEY_BYTES}},
        {"name": "delimiter", "in": "query", "required": False,
         "description": "Directory listing: only direct children; deeper keys fold into {\"_prefix\": ...}.",
         "schema": {"type": "string", "enum": ["/"]}},
        *operation_parameters(),
        _header("Range", "One 'bytes=first-last' range gives 206 on unprocessed content."),
        _header("If-Range", "Serve the Range only while the ETag or Last-Modified still matches."),
        _header("If-None-Match", "A matching ETag gives 304."),
        _header("If-Modified-Since", "Not modified since this HTTP date gives 304."),
    ]


def _write_body():
    metadata = {"type": "string", "description": "A JSON object, as text."}
    return {
        "required": False,
        "description": (
            "Metadata and/or content. POST merges metadata (RFC 7396), PUT replaces it. "
            "Content is a multipart field 'file' or a raw body of any other Content-Type "
            f"(at most ISTORE_MAX_UPLOAD_BYTES, {settings.ISTORE_MAX_UPLOAD_BYTES} here)."
        ),
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {"metadata": metadata}},
            },
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {
                    "metadata": metadata,
                    "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                }},
            },
            "application/json": {
                "schema": {"type": "object", "additionalProperties": False,
                           "properties": {"metadata": {"type": "object"}}},
            },
            "application/octet-stream": {"schema": {"type": "string", "contentMediaType": "*/*"}},
        },
    }


def _write_operation(method):
    merge = "merges the metadata (JSON Merge Patch)" if method == "post" else "replaces the metadata"
    return {
        "operationId": f"{method}Key",
        "summary": f"Create or update the item at a key; {method.upper()} {merge}.",
        "security": [{"token": []}],
        "requestBody": _write_body(),
        "responses": {
            "200": _json("#/components/schemas/Item", "The key existed; the updated item."),
            "201": {**_json("#/components/schemas/Item", "The key is new; the created item."),
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "The key."}}},
            **_errors("400", "401", "404", "413"),
        },
    }


def _verb_path(verb):
    bodies = {
        "_expand": ("#/components/schemas/ExpandRequest", "#/components/schemas/ExpandResult",
                    "Register one item per second of a video (docs/video.md).", "201", ("400", "401", "404", "415")),
        "_search": ("#/components/schemas/SearchRequest", "#/components/schemas/SearchResult",
                    "Similarity search over vectors in metadata (docs/search.md).", "200", ("400", "401")),
        "_create_index": ("#/components/schemas/CreateIndexRequest", "#/components/schemas/CreateIndexResult",
                          "Build an approximate nearest-neighbour index (docs/search.md).", "201", ("400", "401", "404")),
        "_duplicates": ("#/components/schemas/DuplicatesRequest", "#/components/schemas/DuplicatesResult",
                        "Groups of near-duplicate pictures (docs/recognition.md).", "200", ("400", "401")),
    }
    request, result, summary, status, errors = bodies[verb]
    parameters, responses = [], {}
    if verb in verbs.PLANS:  # verbs that may run as jobs (docs/api.md, "Jobs")
        parameters = [_header("Prefer", "`respond-async` runs the verb as a job and answers 202 at once; "
                                        "`respond-async, wait=N` answers the verb's result instead if the job "
                                        "finishes within N seconds (RFC 7240). Other preferences are ignored.",
                              {"type": "string"})]
        responses["202"] = {**_json("#/components/schemas/JobStarted",
                                    "Running as a job (asked for, or too long for a request); poll Location."),
                            "headers": {"Location": {"schema": {"type": "string"}, "description": "/_jobs/{id}"}}}
    return {
        "parameters": [_dir_parameter()],
        "post": {
            "operationId": verb.lstrip("_"),
            "summary": summary,
            "description": "The body is read as JSON whatever its Content-Type.",
            "security": [{"token": []}],
            "parameters": parameters,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": request}},
                "application/x-www-form-urlencoded": {"schema": {"$ref": request}},
            }},
            "responses": {status: _json(result, "Done."), **responses, **_errors(*errors, "405")},
        },
    }


def _dir_parameter(description="The directory the verb works on (ends with '/'; '' is the root)."):
    return {**_key_parameter(), "name": "dir", "description": description}


def _bulk_path(verb):
    return {
        "parameters": [_dir_parameter("The directory the lines write under (ends with '/'; '' is the root).")],
        "post": {
            "operationId": "bulk",
            "summary": "Many writes in one request: one JSON object a line (docs/pipelines.md).",
            "description": "NDJSON, read as a stream: {\"key\": K, \"metadata\": {...}} merges, with "
                           "\"replace\": true replaces, {\"key\": K, \"delete\": true} deletes. K is relative "
                           "to dir or absolute inside it. A bad line fails alone (errors, lines from 1); every line "
                           "counted is durable when the answer is sent.",
            "security": [{"token": []}],
            "requestBody": {"required": True, "content": {
                "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/BulkLine"}}}},
            "responses": {"200": _json("#/components/schemas/BulkResult", "Done; failed lines in errors."),
                          **_errors("401", "405")},
        },
    }


def _changes_path(verb):
    def query(name, description, schema):
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    return {
        "parameters": [_dir_parameter("The directory followed (ends with '/'; '' is the root: every change).")],
        "get": {
            "operationId": "changes",
            "summary": "The committed changes under dir after since, oldest first (docs/pipelines.md).",
            "description": "Pass last_seq as the next since to see every committed change exactly once, in "
                           "commit order, across every host.",
            "parameters": [
                query("since", "A last_seq from a previous answer (0: from the oldest kept), or 'now'.",
                      {"oneOf": [{"type": "integer", "minimum": 0}, {"const": "now"}]}),
                query("limit", "At most this many changes (default 1000).",
                      {"type": "integer", "minimum": 1, "maximum": 10000}),
                query("wait", "Seconds to wait for a change when there is none yet (long poll).",
                      {"type": "number", "minimum": 0, "maximum": 60}),
            ],
            "responses": {
                "200": _json("#/components/schemas/Changes", "The changes, and where to continue."),
                "400": {"description": "A bad since, limit or wait.", **_error_ref()},
                "410": {"description": "since is older than the changes kept (ISTORE_CHANGES_RETENTION): "
                                       "list the directory again, then follow from since=now.", **_error_ref()},
                **_errors("401", "405"),
            },
        },
    }


SPECIAL_VERB_PATHS = {"_bulk": _bulk_path, "_changes": _changes_path}


def _components():
    item = {
        "type": "object",
        "required": ["_id", "_filepath", "metadata"],
        "properties": {
            "_id": {"type": "integer", "minimum": 1},
            "_filepath": {"type": "string"},
            "metadata": {"type": "object"},
            "_created": {"type": ["string", "null"], "format": "date-time"},
            "_updated": {"type": ["string", "null"], "format": "date-time"},
            "_content": {"type": "object", "properties": {
                "size": {"type": "integer"}, "type": {"type": "string"}, "etag": {"type": "string"},
            }},
            "_distance": {"type": "number"},
            "_features": {"type": "object", "description": (
                "GET ?meta=1 only, once computed: the built-in image features without the vector "
                "(phash, pdq, pdq_quality, embedding {model, dims}, labels, computed), or {error, computed} "
                "when the content is not a picture."),
                "properties": {
                    "phash": {"type": "string"}, "pdq": {"type": "string"},
                    "pdq_quality": {"type": "integer", "minimum": 0, "maximum": 100},
                    "embedding": {"type": "object", "properties": {"model": {"type": "string"},
                                                                   "dims": {"type": "integer"}}},
                    "labels": {"type": "array", "items": {"type": "object", "properties": {
                        "label": {"type": "string"}, "score": {"type": "number"}}}},
                    "computed": {"type": ["string", "null"], "format": "date-time"},
                    "error": {"type": "string"},
                }},
        },
    }
    return {
        "securitySchemes": {
            "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                      "description": "'Token <key>' (Django REST framework tokens, from the admin or "
                                     "`manage.py drf_create_token`)."},
        },
        "schemas": {
            "Item": item,
            "Prefix": {"type": "object", "required": ["_prefix"], "properties": {"_prefix": {"type": "string"}}},
            "Listing": {"type": "array", "items": {"oneOf": [{"$ref": "#/components/schemas/Item"},
                                                            {"$ref": "#/components/schemas/Prefix"}]}},
            "Deleted": {"type": "object", "required": ["deleted"],
                        "properties": {"deleted": {"type": "integer", "minimum": 0}}},
            "Error": {"type": "object", "required": ["error", "detail"], "additionalProperties": False,
                      "properties": {"error": {"type": "string", "description": "A short code."},
                                     "detail": {"type": "string", "description": "What was wrong and how to fix it."}}},
            "Info": {"type": "object", "description": "apply=info: format, width, height, mode; for video also "
                                                      "duration, fps, codec.",
                     "properties": {"format": {"type": "string"}, "width": {"type": "integer"},
                                    "height": {"type": "integer"}, "mode": {"type": "string"}}},
            "ExpandRequest": {"type": "object", "required": ["video"], "properties": {
                "video": {"type": "string", "description": "A key with content, or a path embedding a source."},
                "every": {"type": "number", "exclusiveMinimum": 0}}},
            "ExpandResult": {"type": "object", "properties": {"created": {"type": "integer"},
                                                              "updated": {"type": "integer"}}},
            "SearchRequest": {"type": "object", "required": ["similar"], "properties": {"similar": {
                "type": "object", "required": ["by"], "properties": {
                    "to": {"type": "string"},
                    "vector": {"oneOf": [{"type": "array", "items": {"type": "number"}},
                                         {"type": "string", "description": "a hash in hex, for _phash and _pdq"}]},
                    "by": {"type": "string"}, "limit": {"type": "integer", "minimum": 1},
                    "max_distance": {"type": "number", "minimum": 0, "maximum": 1}}}}},
            "SearchResult": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
            "CreateIndexRequest": {"type": "object", "required": ["similar"], "properties": {"similar": {
                "type": "object", "required": ["by"], "properties": {"by": {"type": "string"}}}}},
            "CreateIndexResult": {"type": "object"},
            "BulkLine": {"type": "object", "required": ["key"], "additionalProperties": False, "properties": {
                "key": {"type": "string"}, "metadata": {"type": "object"},
                "replace": {"type": "boolean"}, "delete": {"type": "boolean"}}},
            "BulkResult": {"type": "object", "required": ["created", "updated", "deleted", "errors"], "properties": {
                "created": {"type": "integer"}, "updated": {"type": "integer"}, "deleted": {"type": "integer"},
                "errors": {"type": "array", "items": {"type": "object", "required": ["line", "error", "detail"],
                                                      "properties": {"line": {"type": "integer", "minimum": 1},
                                                                     "error": {"type": "string"},
                                                                     "detail": {"type": "string"}}}}}},
            "Changes": {"type": "object", "required": ["changes", "last_seq"], "properties": {
                "changes": {"type": "array", "items": {"type": "object", "required": ["seq", "key", "op", "_id"],
                                                       "properties": {
                    "seq": {"type": "integer", "minimum": 1}, "key": {"type": "string"},
                    "op": {"enum": ["create", "update", "delete"]}, "_id": {"type": "integer"}}}},
                "last_seq": {"type": "integer", "minimum": 0}}},
            "DuplicatesRequest": {"type": "object", "properties": {
                "by": {"enum": ["_pdq", "_phash", "_embedding"]},
                "max_distance": {"type": "number", "minimum": 0, "maximum": 1}}},
            "JobStarted": {"type": "object", "required": ["job", "state"], "properties": {
                "job": {"type": "string", "format": "uuid"}, "state": {"const": "queued"}}},
            "Job": {"type": "object", "required": ["job", "state", "progress", "result", "error"], "properties": {
                "job": {"type": "string", "format": "uuid"},
                "state": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
                "progress": {"type": "object", "properties": {"done": {"type": "integer"},
                                                              "total": {"type": "integer"}}},
                "result": {"description": "When done: the body the verb answers in a request."},
                "error": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Error"}]},
                "kind": {"type": "string"}, "dir": {"type": ["string", "null"]},
                "created": {"type": "string", "format": "date-time"},
                "started": {"type": ["string", "null"], "format": "date-time"},
                "finished": {"type": ["string", "null"], "format": "date-time"},
                "attempts": {"type": "integer"}}},
            "DuplicatesResult": {"type": "object", "required": ["groups"], "properties": {"groups": {
                "type": "array", "items": {"type": "array", "items": {"type": "string"}}}}},
        },
    }


def _job_path():
    job = _json("#/components/schemas/Job", "The job.")
    parameters = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                   "description": "The job's id, from the 202 that started it."}]
    errors = {"401": {"description": "A job needs the credentials that started it.", **_error_ref()},
              "404": {"description": "No such job, or another user's (no_such_job).", **_error_ref()}}
    return {
        "parameters": parameters,
        "get": {"operationId": "readJob", "summary": "A job's state, progress, and result or error.",
                "security": [{"token": []}], "responses": {"200": job, **errors}},
        "delete": {"operationId": "cancelJob",
                   "summary": "Cancel a queued or running job (a running one stops at its next step).",
                   "security": [{"token": []}],
                   "responses": {"200": job, **errors, "405": {"description": "Not GET, HEAD or DELETE.",
                                                               **_error_ref()},
                                 "409": {"description": "The job has finished already (job_finished).",
                                         **_error_ref()}}},
    }


def _service_path(operation_id, summary, ref=None):
    ok = _json(ref, "OK") if ref else {"description": "OK"}
    return {"get": {"operationId": operation_id, "summary": summary, "responses": {"200": ok}}}


@functools.lru_cache(maxsize=1)
def build():
    """The OpenAPI document, as a dict."""
    content_responses = {
        "200": {"description": "The key's content (uploaded or from its source, processed with ?apply=), "
                               "the item JSON with ?meta=1, or a directory listing.",
                "content": {"*/*": {"schema": {}},
                            "application/json": {"schema": {"oneOf": [
                                {"$ref": "#/components/schemas/Item"},
                                {"$ref": "#/components/schemas/Listing"},
                                {"$ref": "#/components/schemas/Info"}]}}}},
        "206": {"description": "One byte range of unprocessed content."},
        "304": {"description": "Not modified (If-None-Match / If-Modified-Since)."},
        **_errors("400", "401", "403", "404", "413", "415", "416", "422", "502", "504", "508"),
    }
    key_path = {
        "parameters": [],
        "get": {
            "operationId": "readKey",
            "summary": "Read a key's content, its item (?meta=1), or list a directory (key ending in '/').",
            "parameters": _read_parameters(),
            "responses": content_responses,
        },
        "head": {
            "operationId": "headKey",
            "summary": "GET without the body.",
            "parameters": _read_parameters(),
            "responses": {k: v for k, v in content_responses.items() if k != "200"} | {
                "200": {"description": "Headers of the GET."}},
        },
        "post": {**_write_operation("post"), "parameters": [_key_parameter()]},
        "put": {**_write_operation("put"), "parameters": [_key_parameter()]},
        "delete": {
            "operationId": "deleteKey",
            "summary": "Delete a key (200 with the item) or everything under a directory (200 with the count).",
            "security": [{"token": []}],
            "parameters": [_key_parameter()],
            "responses": {
                "200": {"description": "The deleted item, or {\"deleted\": N} for a directory.",
                        "content": {"application/json": {"schema": {"oneOf": [
                            {"$ref": "#/components/schemas/Item"}, {"$ref": "#/components/schemas/Deleted"}]}}}},
                **_errors("400", "401", "404"),
            },
        },
    }
    paths = {"/{key}": key_path}
    for verb in keys.VERBS:
        paths["/{dir}" + verb] = SPECIAL_VERB_PATHS.get(verb, _verb_path)(verb)
    paths["/_jobs/{id}"] = _job_path()
    paths["/_schema/"] = _service_path("schema", "This description (OpenAPI 3.1, JSON).")
    paths["/_health"] = _service_path("health", "Liveness and a database round trip; 503 when it fails.")
    paths["/_ready"] = _service_path("ready", "Readiness: database and content storage; 503 when one fails.")
    paths["/_metrics"] = _service_path("metrics", "Prometheus metrics (text format).")
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "istore",
            "version": "1",
            "description": "Object store, hierarchical metadata database, name service and image proxy in "
                           "one HTTP namespace, described in docs/api.md; every error is "
                           "{\"error\": code, \"detail\": text}.",
        },
        "paths": paths,
        "components": _components(),
    }


@csrf_exempt  # a POST is answered with a JSON 405, not Django's HTML CSRF page
def schema_view(request):
    if request.method not in ("GET", "HEAD"):
        return error(405, "method_not_allowed", "/_schema/ is read-only: use GET.", headers={"Allow": "GET, HEAD"})
    body = jsontext.dumps(build()).encode("utf-8")
    response = HttpResponse(body, content_type="application/json")
    response["Content-Length"] = str(len(body))
    response["Cache-Control"] = "public, max-age=300"
    return response
