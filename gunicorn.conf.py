"""
gunicorn settings for istore; each can be overridden on the command line or
through GUNICORN_CMD_ARGS. See docs/deploy.md.
"""
import multiprocessing
import os

bind = os.environ.get("ISTORE_BIND", "127.0.0.1:8592")
workers = int(os.environ.get("ISTORE_WORKERS", 0)) or min(multiprocessing.cpu_count() * 2 + 1, 8)
threads = int(os.environ.get("ISTORE_THREADS", 1))
# A key may be 4096 bytes, 12 KiB once percent-encoded; gunicorn's default
# request line limit (4094) would refuse it. 0 lifts the limit; the key itself
# is bounded by istore (400 past 4096 bytes), the headers still by gunicorn.
limit_request_line = 0
# Video frames and large sources take longer than gunicorn's 30 s default.
timeout = int(os.environ.get("ISTORE_WORKER_TIMEOUT", 120))
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("ISTORE_ACCESS_LOG", "-") or None  # empty: no access log
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus metrics from every worker process (objects/metrics.py).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="istore-metrics-")


def on_starting(server):
    """Check istore's settings once, before any worker starts: a missing or
    wrong setting is one line on stderr, not a traceback from every worker."""
    import sys

    from django.core.exceptions import ImproperlyConfigured

    before = set(sys.modules)
    try:
        import istore_site.settings  # noqa: F401
    except ImproperlyConfigured as exc:
        sys.exit(f"istore: {exc}")
    finally:
        # Workers import the settings themselves (and again after --reload).
        for name in set(sys.modules) - before:
            del sys.modules[name]


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
