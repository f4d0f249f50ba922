"""
Middleware: request logging and metrics for every request, and the admin's
session stack for the admin only.
"""
import json
import logging
import time

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.utils.module_loading import import_string

from . import metrics
from .responses import error

logger = logging.getLogger("istore.requests")


def log_request(environ, path, status, seconds, length, kind=None):
    """Count a request in the metrics and write its line to the request log."""
    method = environ.get("REQUEST_METHOD")
    kind = kind or metrics.request_kind(method, path, status)
    metrics.observe_request(method, kind, status, seconds)
    if logger.isEnabledFor(logging.INFO):
        logger.info(json.dumps({
            "method": method,
            "path": path,
            "query": environ.get("QUERY_STRING", ""),
            "status": status,
            "ms": round(seconds * 1000, 2),
            "bytes": length,
            "remote": environ.get("REMOTE_ADDR"),
            "kind": kind,
        }, ensure_ascii=False))


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        log_request(request.META, request.path, response.status_code, time.perf_counter() - started,
                    response.get("Content-Length"))
        return response


class AllowedHostsMiddleware:
    """400 for a ``Host`` outside ``ALLOWED_HOSTS``, on every path.

    Django validates the host only when something asks for it (CommonMiddleware,
    CSRF), and the API runs neither; without this an API request with any Host
    would be answered. The probes are exempt: load balancers and Prometheus
    usually reach a host by its address, and their answers name no host.
    """

    PROBES = ("/_health", "/_ready", "/_metrics")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info not in self.PROBES:
            try:
                request.get_host()
            except DisallowedHost:
                # Answered here, not by handler400: with DEBUG on Django would
                # send its HTML debug page instead.
                return error(400, "disallowed_host",
                             "The Host header names no host this istore answers for (ALLOWED_HOSTS).")
        return self.get_response(request)


class AdminOnlyMiddleware:
    """Runs ``ISTORE_ADMIN_MIDDLEWARE`` (sessions, CSRF, auth, messages,
    clickjacking) for paths under ``/_admin/`` only.

    The API authenticates with tokens and never uses a session or a cookie, so
    a cached image need not pay for five middleware on its hot path. CSRF
    stays enforced in the admin: every admin view is wrapped in
    ``csrf_protect`` by ``AdminSite.admin_view`` (and the login view by its
    own decorator), which is why Django's middleware-presence checks
    admin.E408–E410 are silenced in settings.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        handler = get_response
        for path in reversed(settings.ISTORE_ADMIN_MIDDLEWARE):
            handler = import_string(path)(handler)
        self.admin = handler

    def __call__(self, request):
        if request.path_info.startswith("/_admin/"):
            return self.admin(request)
        return self.get_response(request)
