"""
Request logging and metrics: one structured (JSON) log line and one metrics
observation per request.
"""
import json
import logging
import time

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
