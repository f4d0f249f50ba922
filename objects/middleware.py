"""
Middleware: request logging and metrics for every request, and the admin's
session stack for the admin only.
"""
import json
import logging
import time

from django.conf import settings
from django.utils.module_loading import import_string

from . import metrics

logger = logging.getLogger("istore.requests")


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        kind = metrics.request_kind(request.method, request.path, response.status_code)
        metrics.observe_request(request.method, kind, response.status_code, seconds)
        if logger.isEnabledFor(logging.INFO):
            logger.info(json.dumps({
                "method": request.method,
                "path": request.path,
                "query": request.META.get("QUERY_STRING", ""),
                "status": response.status_code,
                "ms": round(seconds * 1000, 2),
                "bytes": response.get("Content-Length"),
                "remote": request.META.get("REMOTE_ADDR"),
                "kind": kind,
            }, ensure_ascii=False))
        return response


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
