"""
Prometheus metrics, served at ``/_metrics``.

Under gunicorn every worker is a process, so the metrics use
prometheus_client's multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set
(gunicorn.conf.py sets it); a single process uses the default registry.
Other modules record through the helpers here, never through the client
library directly, so the metric names live in one place.
"""
import os
import time
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

from . import keys

REQUESTS = Counter("istore_requests_total", "HTTP requests answered", ["method", "kind", "status"])
LATENCY = Histogram("istore_request_seconds", "Time to answer a request", ["method", "kind"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CACHE = Counter("istore_cache_lookups_total", "Cache lookups by what was looked up and the outcome",
                ["what", "outcome"])
PROCESSING = Histogram("istore_processing_seconds", "Time to compute a processed result", ["operation"],
                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
FETCHED = Counter("istore_source_bytes_total", "Bytes fetched from sources", ["scheme"])


# Labels come from fixed sets only (these, and the verbs of keys.VERBS): a client controls the method, the path
# and the status it provokes, and every new label value is a new series in every
# worker's metrics file. Anything else counts as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
RESERVED = frozenset({"_admin", "_static", "_health", "_ready", "_metrics", "_schema", "_jobs"})


def request_kind(method, path, status):
    """A low-cardinality label for a request (never the key itself)."""
    if path.startswith("/_"):
        first = path.split("/", 2)[1]
        return first if first in RESERVED else "reserved"
    verb = path.rsplit("/", 1)[-1]
    if verb in keys.VERBS:
        return verb
    return "directory" if path.endswith("/") else "key"


def method_label(method):
    return method if method in METHODS else "other"


def status_label(status):
    return str(status) if isinstance(status, int) and 100 <= status <= 599 else "other"


def observe_request(method, kind, status, seconds):
    method = method_label(method)
    REQUESTS.labels(method, kind, status_label(status)).inc()
    LATENCY.labels(method, kind).observe(seconds)


def cache_lookup(what, hit):
    CACHE.labels(what, "hit" if hit else "miss").inc()


def fetched_bytes(scheme, count):
    FETCHED.labels(scheme).inc(count)


@contextmanager
def processing_timer(operation):
    started = time.perf_counter()
    try:
        yield
    finally:
        PROCESSING.labels(operation).observe(time.perf_counter() - started)


def render():
    """The metrics text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
