"""
Which listener a request came in on, and the WSGI layer that sends the S3
listener's requests to the S3 app.

gunicorn binds ``ISTORE_S3_BIND`` beside its main address
(gunicorn.conf.py). A request is the S3 listener's when the socket it
arrived on (``gunicorn.socket``, the accepted connection) is bound to that
address: the kernel says so, whatever the client puts in ``Host``. Those
requests skip replay (objects/replay.py answers native GETs only) and reach
Django marked with ``LISTENER``, which ``S3ListenerMiddleware`` hands to
``s3.dispatch.handle`` before any other middleware or URL routing.
"""
import ipaddress
import time

from django.conf import settings

LISTENER = "istore.listener"
WILDCARD = ("", "0.0.0.0", "::", "*")


def parse_bind(bind):
    """``("unix", path)`` or ``(host, port)`` of a gunicorn bind string."""
    if bind.startswith("unix:"):
        return "unix", bind[len("unix:"):]
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


def arrived_on(sock, bind):
    """True when the accepted socket ``sock`` is bound to the address ``bind``."""
    try:
        name = sock.getsockname()
    except (OSError, AttributeError):
        return False
    host, port = parse_bind(bind)
    if host == "unix":
        return name == port
    if not isinstance(name, tuple) or name[1] != port:
        return False
    if host in WILDCARD:
        return True
    try:
        return ipaddress.ip_address(name[0].split("%", 1)[0]) == ipaddress.ip_address(host)
    except ValueError:
        return True  # a host name: gunicorn bound what it resolved to, on this port


class ListenerRouter:
    """WSGI: requests on the S3 listener go to Django directly (marked), the rest to ``native``."""

    def __init__(self, native, django):
        self.native, self.django = native, django

    def __call__(self, environ, start_response):
        bind = settings.ISTORE_S3_BIND
        if bind and arrived_on(environ.get("gunicorn.socket"), bind):
            environ[LISTENER] = "s3"
            return self.django(environ, start_response)
        return self.native(environ, start_response)


class S3ListenerMiddleware:
    """Answers requests marked by ``ListenerRouter`` with the S3 app (and logs them as kind ``s3``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.META.get(LISTENER) != "s3":
            return self.get_response(request)
        from objects.middleware import log_request

        from .dispatch import handle

        started = time.perf_counter()
        response = handle(request)
        log_request(request.META, request.path, response.status_code, time.perf_counter() - started,
                    response.get("Content-Length"), kind="s3")
        return response
