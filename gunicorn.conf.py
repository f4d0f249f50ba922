"""
gunicorn settings for istore; each can be overridden on the command line or
through GUNICORN_CMD_ARGS. See docs/deploy.md ("Workers and threads") for why
threads, and the figures.
"""
import multiprocessing
import os

bind = os.environ.get("ISTORE_BIND", "127.0.0.1:8592")
# Threads serve cheap requests while others wait on slow origins or ffmpeg;
# expensive work is bounded by the slots of objects/capacity.py, not by
# processes. The worker (objects/worker.py) is gunicorn's gthread with JSON
# errors and a watchdog that cuts requests and clients that stopped moving.
worker_class = "objects.worker.ThreadWorker"
workers = int(os.environ.get("ISTORE_WORKERS", 0)) or max(2, min(multiprocessing.cpu_count(), 8))
threads = int(os.environ.get("ISTORE_THREADS", 16))
# Finite limits on what a client sends before istore sees it (414 / 431 JSON
# past them): a 4096-byte key is 12 KiB percent-encoded, and a listing's
# after= or S3's x-amz-copy-source may carry another one.
limit_request_line = 65536
limit_request_fields = 100
limit_request_field_size = 16384
# A request that sends nothing for this long is cut (504 JSON if it has not
# answered yet), and so is a client that stops sending or reading; a stream
# that keeps sending is never cut, however long it runs.
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


def _check_settings():
    # A missing or wrong setting is one line on stderr, not a traceback from every worker.
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


def post_fork(server, worker):
    # Django's settings (objects/capacity.py) size the capacity by the threads
    # actually configured, command line included.
    os.environ["ISTORE_THREADS"] = str(worker.cfg.threads)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# The S3 listener (s3/listener.py): ISTORE_S3_BIND is bound beside the main
# address, also when that one comes from --bind on the command line, which
# replaces the setting above (hence a hook rather than `bind`).
def _add_s3_bind(cfg):
    address = os.environ.get("ISTORE_S3_BIND")
    if address and address not in cfg.bind:
        cfg.set("bind", [*cfg.bind, address])
        return True
    return False


def on_starting(server):
    """Check istore's settings once, before any worker starts, and add the S3 address."""
    _check_settings()
    _add_s3_bind(server.cfg)


def on_reload(server):
    # A reload (SIGHUP) re-reads the command line without the S3 address and
    # rebinds what it names: listen on the S3 address again.
    if _add_s3_bind(server.cfg):
        from gunicorn import sock

        address = server.cfg.address[-1]
        server.LISTENERS.append(sock._sock_type(address)(address, server.cfg, server.log))


# Jobs workers (jobs/supervisor.py): ISTORE_JOBS_WORKERS `manage.py jobs_worker`
# processes beside this server, so that jobs run with no further command.
_jobs_workers = None


def when_ready(server):
    global _jobs_workers
    from jobs import supervisor

    _jobs_workers = supervisor.from_environment()


def on_exit(server):
    if _jobs_workers is not None:
        _jobs_workers.stop(timeout=server.cfg.graceful_timeout)
