"""
The catch-all view over the namespace: parse the request, check access, and
call the plain functions that do the work (writing, listing, reading, verbs).
"""
import logging
from urllib.parse import quote

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import access, content, details, keys, listing, payloads, reading, serving, signing, verbs, writing
from .errors import ApiError, BadRequest, NotFound
from .models import Item
from .responses import error, error_response, json_response

logger = logging.getLogger(__name__)
READ_METHODS = ("GET", "HEAD")
ALLOWED = "GET, HEAD, POST, PUT, DELETE"


@csrf_exempt
def namespace(request):
    try:
        key = keys.key_from_request(request.META, request.path_info)
        directory, verb = keys.split_verb(key)
        if verb:
            return verbs.dispatch(request, directory, verb)
        if keys.is_reserved(key):
            raise NotFound(f"{key!r} is reserved: paths whose first segment starts with '_' are not keys.",
                           code="reserved")
        handler = HANDLERS.get(request.method)
        if handler is None:
            return error(405, "method_not_allowed", f"{request.method} is not supported on keys; use {ALLOWED}.",
                         headers={"Allow": ALLOWED})
        request.writer = access.check(request, write=request.method not in READ_METHODS)
        signing.check(request)  # before any source is opened
        response = handler(request, key)
    except ApiError as exc:
        response = error_response(exc)
    except (OperationalError, InterfaceError) as exc:
        # The database is down or restarting: say so, and let clients retry.
        logger.warning("database error on %s %s: %s", request.method, request.path, exc)
        response = error(503, "database_unavailable", "The database is unavailable; retry in a moment.",
                         headers={"Retry-After": "5"})
    return response


def get(request, key):
    meta = request.GET.get("meta") in ("1", "true")
    if keys.is_directory(key) and not meta:
        return list_directory(request, key)
    item = find(key)
    if meta:
        return json_response(details.describe(item))
    body = reading.read(item.key, request.GET, item=item, accept=request.META.get("HTTP_ACCEPT", ""))
    try:
        return serving.respond(request, body)
    finally:
        body.close()


def find(key):
    item = Item.objects.by_key(key)
    if item is None:
        raise NotFound(f"No item is registered at {key!r}; register it with POST first.", code="no_such_key")
    return item


def list_directory(request, prefix):
    limit, after, delimiter = listing.parse_params(request.GET)
    if request.method == "HEAD":
        # The headers a GET would send, without running the listing.
        return HttpResponse(b"", content_type="application/json")
    if limit is None:
        response = StreamingHttpResponse(
            (chunk.encode("utf-8") for chunk in listing.stream(prefix, delimiter)), content_type="application/json"
        )
        return response
    entries, next_after = listing.page(prefix, limit, after, delimiter)
    headers = {}
    if next_after is not None:
        headers["Link"] = listing.next_link(request.path, limit, next_after, delimiter)
    return json_response([listing.render(entry) for entry in entries], headers=headers)


def post(request, key):
    return _write(request, key, replace=False)


def put(request, key):
    return _write(request, key, replace=True)


def _write(request, key, replace):
    payload = payloads.read_payload(request)
    stored = None
    if payload.upload is not None or payload.raw_body:
        _check_uploadable(key)
        if payload.upload is not None:
            stored = content.store_uploaded_file(payload.upload, key)
        else:
            read, expected_length = payloads.raw_body_reader(request)
            stored = content.store_stream(read, key, request.META.get("CONTENT_TYPE", ""),
                                          expected_length=expected_length)
    item, created = writing.write(key, payload.metadata, replace=replace, stored=stored, owner=request.writer)
    if created:
        return json_response(item.as_dict(), status=201, headers={"Location": quote(key, safe="/:@!$&'()*+,;=~")})
    return json_response(item.as_dict())


def _check_uploadable(key):
    if keys.parse_key(key).source is not None:
        raise BadRequest("This key embeds a source URL: its bytes come from the source, so it cannot hold "
                         "uploaded content. Upload to a plain key instead.", code="key_has_source")
    if keys.is_directory(key):
        raise BadRequest("A key ending in '/' is a directory: it holds metadata only, not content.",
                         code="key_is_directory")


def delete(request, key):
    if keys.is_directory(key):
        return json_response({"deleted": writing.delete_tree(key)})
    return json_response(writing.delete(key))


HANDLERS = {"GET": get, "HEAD": get, "POST": post, "PUT": put, "DELETE": delete}


def health(request):
    """Liveness plus a database round trip: 200 when the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return error(503, "database_unavailable", f"The database did not answer: {exc.__class__.__name__}.")
    return json_response({"status": "ok", "database": "ok"})


def ready(request):
    """Readiness: the database answers and the content storage can be listed."""
    from django.core.files.storage import default_storage

    response = health(request)
    if response.status_code != 200:
        return response
    try:
        default_storage.exists("readiness-probe")
    except Exception as exc:  # any storage backend failure means not ready
        return error(503, "storage_unavailable", f"The content storage did not answer: {exc.__class__.__name__}.")
    return json_response({"status": "ready", "database": "ok", "storage": "ok"})


def metrics_view(request):
    from . import metrics

    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)


def not_found(request, exception=None):
    return error(404, "not_found", f"Nothing is served at {request.path!r}.")


def server_error(request):
    return error(500, "server_error", "istore failed on this request; the error was logged.")


def bad_request(request, exception=None):
    return error(400, "bad_request", "The request could not be understood.")


def permission_denied(request, exception=None):
    return error(403, "forbidden", "You may not do this.")
