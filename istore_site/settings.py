"""
Settings for istore, read from the environment in this one place.

Every variable has a safe, local default (SQLite and local disk under
``ISTORE_DATA_DIR``, no anonymous writes, no ``file://`` roots, no loopback
sources) and a line in ``docs/configuration.md``. Booleans are ``true`` /
``false``; lists are comma-separated.
"""
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    value = value.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_float(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def env_list(name, default=()):
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [part.strip() for part in value.split(",") if part.strip()]


# --- Django core -------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required unless DJANGO_DEBUG=true: set it in the environment "
            "(docs/deploy.md), or use make run, make superuser and make token, which use development settings."
        )
    SECRET_KEY = "istore-insecure-development-key-" + "x" * 32

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

ISTORE_DATA_DIR = Path(os.environ.get("ISTORE_DATA_DIR", BASE_DIR / "var")).resolve()
ISTORE_DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "objects",
    "processing",
    "search",
    "recognition",
    "s3",
    "django_tasks",
    "django_tasks_db",
    "jobs",
    "feed",
]

MIDDLEWARE = [
    # Requests on the S3 listener are answered here, before anything else (s3/listener.py).
    "s3.listener.S3ListenerMiddleware",
    "objects.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "objects.middleware.AllowedHostsMiddleware",
    # Serves /_static/ (the admin's CSS and JS) under gunicorn without DEBUG.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "objects.middleware.AdminOnlyMiddleware",
]
# The admin's own stack, run for /_admin/ only (objects.middleware.AdminOnlyMiddleware).
ISTORE_ADMIN_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The admin's middleware run through AdminOnlyMiddleware, which these checks
# cannot see; CSRF is enforced by the admin's csrf_protect decorators.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]

ROOT_URLCONF = "istore_site.urls"
WSGI_APPLICATION = "istore_site.wsgi.application"
# Keys are paths verbatim: never redirect /a to /a/ or merge anything.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{ISTORE_DATA_DIR / 'istore.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue on a file lock rather than SQLite's sleeping busy handler
    # (istore_site/sqlite3/base.py).
    DATABASES["default"]["ENGINE"] = "istore_site.sqlite3"
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write
    # lock when a transaction starts, so two workers never deadlock upgrading
    # a read lock; the busy timeout makes a writer wait instead of failing.
    # Connections are kept (CONN_MAX_AGE): when the last connection to a WAL
    # database closes, SQLite checkpoints with an fsync, ~20 ms per request.
    # synchronous=FULL: a commit is on disk before it returns. Transactions
    # run at NORMAL and sync the WAL after releasing the write lock, so
    # concurrent writers share syncs (istore_site/sqlite3/base.py).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
    }
    # A file, not :memory:, so that live-server tests see real concurrency.
    DATABASES["default"]["TEST"] = {"NAME": str(ISTORE_DATA_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Storage -----------------------------------------------------------------

ISTORE_STORAGE = os.environ.get("ISTORE_STORAGE", "local")
if ISTORE_STORAGE == "local":
    content_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(ISTORE_DATA_DIR / "content")},
    }
elif ISTORE_STORAGE == "s3":
    content_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("ISTORE_S3_BUCKET", "istore"),
            "endpoint_url": os.environ.get("ISTORE_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("ISTORE_S3_REGION") or None,
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID") or None,
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
            "location": os.environ.get("ISTORE_S3_PREFIX", ""),
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
        },
    }
else:
    raise ImproperlyConfigured(f"ISTORE_STORAGE must be local or s3, not {ISTORE_STORAGE!r}")

STORAGES = {
    "default": content_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_URL = "/_static/"
STATIC_ROOT = ISTORE_DATA_DIR / "static"
# collectstatic fills it (make serve-prod); whitenoise warns at start-up when it is missing.
STATIC_ROOT.mkdir(exist_ok=True)

# Uploads: files past 2.5 MB spool to disk, never to memory, written out as
# they arrive (objects/payloads.py).
FILE_UPLOAD_TEMP_DIR = os.environ.get("ISTORE_UPLOAD_TEMP_DIR") or None
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler",
                        "objects.payloads.SpoolingUploadHandler"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024

# --- Internationalisation ----------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- REST framework ----------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "UNAUTHENTICATED_USER": None,
}

# --- Security behind a proxy --------------------------------------------------

if env_bool("ISTORE_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("ISTORE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("ISTORE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- istore ------------------------------------------------------------------

MiB = 1024 * 1024
GiB = 1024 * MiB

ISTORE_PUBLIC_READ = env_bool("ISTORE_PUBLIC_READ", True)
ISTORE_ALLOW_ANONYMOUS_WRITES = env_bool("ISTORE_ALLOW_ANONYMOUS_WRITES", False)
ISTORE_FILE_ROOTS = env_list("ISTORE_FILE_ROOTS")
ISTORE_ALLOW_LOOPBACK_SOURCES = env_bool("ISTORE_ALLOW_LOOPBACK_SOURCES", False)
ISTORE_ALLOW_PRIVATE_SOURCES = env_bool("ISTORE_ALLOW_PRIVATE_SOURCES", True)
ISTORE_ALLOWED_SOURCES = env_list("ISTORE_ALLOWED_SOURCES")

ISTORE_CACHE_DIR = Path(os.environ.get("ISTORE_CACHE_DIR") or ISTORE_DATA_DIR / "cache")
ISTORE_CACHE_MAX_BYTES = env_int("ISTORE_CACHE_MAX_BYTES", 10 * GiB)
ISTORE_CACHE_DERIVATIVES = env_bool("ISTORE_CACHE_DERIVATIVES", True)
ISTORE_REDIS_URL = os.environ.get("ISTORE_REDIS_URL", "")
# Per worker process: repeated GETs of unchanged content answered without
# Django's request cycle (objects/replay.py); 0 turns it off.
ISTORE_REPLAY_CACHE_BYTES = env_int("ISTORE_REPLAY_CACHE_BYTES", 32 * MiB)
ISTORE_REPLAY_MAX_BODY_BYTES = env_int("ISTORE_REPLAY_MAX_BODY_BYTES", 512 * 1024)

ISTORE_MAX_SOURCE_BYTES = env_int("ISTORE_MAX_SOURCE_BYTES", 5 * GiB)
ISTORE_MAX_SOURCE_PIXELS = env_int("ISTORE_MAX_SOURCE_PIXELS", 50_000_000)
ISTORE_MAX_OUTPUT_PIXELS = env_int("ISTORE_MAX_OUTPUT_PIXELS", 50_000_000)
# Longest side of a processed output (resize, fit, video frames): with the
# pixel limit alone, w=25000000&h=2 would pass.
ISTORE_MAX_OUTPUT_SIDE = env_int("ISTORE_MAX_OUTPUT_SIDE", 16384)
# Pillow's block allocator (processing/apps.py): freed image memory kept per
# worker for the next image, so each request does not page it in anew.
ISTORE_PILLOW_BLOCKS_MAX = env_int("ISTORE_PILLOW_BLOCKS_MAX", 16)
ISTORE_PILLOW_BLOCK_SIZE = env_int("ISTORE_PILLOW_BLOCK_SIZE", 1 * MiB)
if ISTORE_PILLOW_BLOCKS_MAX < 0:
    raise ImproperlyConfigured("ISTORE_PILLOW_BLOCKS_MAX must be 0 or more")
if ISTORE_PILLOW_BLOCK_SIZE <= 0 or ISTORE_PILLOW_BLOCK_SIZE % 4096:
    raise ImproperlyConfigured("ISTORE_PILLOW_BLOCK_SIZE must be a positive multiple of 4096")
ISTORE_MAX_METADATA_BYTES = env_int("ISTORE_MAX_METADATA_BYTES", 1 * MiB)
ISTORE_MAX_UPLOAD_BYTES = env_int("ISTORE_MAX_UPLOAD_BYTES", 5 * GiB)
ISTORE_MAX_SELF_DEPTH = env_int("ISTORE_MAX_SELF_DEPTH", 8)
ISTORE_MAX_REDIRECTS = env_int("ISTORE_MAX_REDIRECTS", 5)
ISTORE_CONNECT_TIMEOUT = env_float("ISTORE_CONNECT_TIMEOUT", 5.0)
ISTORE_READ_TIMEOUT = env_float("ISTORE_READ_TIMEOUT", 30.0)
# Total seconds from the request to a source to its last byte (504 before the
# first byte went to the client; after it, the response is cut short).
ISTORE_SOURCE_TIMEOUT = env_float("ISTORE_SOURCE_TIMEOUT", 30.0)
ISTORE_FFMPEG_TIMEOUT = env_float("ISTORE_FFMPEG_TIMEOUT", 30.0)
ISTORE_FFMPEG_BINARY = os.environ.get("ISTORE_FFMPEG_BINARY", "")
ISTORE_ACCEL_REDIRECT = os.environ.get("ISTORE_ACCEL_REDIRECT", "")
# Seconds nginx's proxy_cache may reuse a content response (X-Accel-Expires);
# 0 (the default) never lets it. See docs/deploy.md, "nginx caches content".
ISTORE_ACCEL_EXPIRES = env_int("ISTORE_ACCEL_EXPIRES", 0)

# Capacity for expensive work (objects/capacity.py): slots per worker process
# for each kind, and how long a request waits for one before 503 overloaded.
# ISTORE_THREADS is gunicorn's threads per worker (the worker sets it from its
# configuration), of which a quarter is kept for cheap requests.
ISTORE_THREADS = env_int("ISTORE_THREADS", 16)
ISTORE_QUEUE_TIMEOUT = env_float("ISTORE_QUEUE_TIMEOUT", 10.0)
# How long the change feed (GET {dir}/_changes) keeps a change, in seconds.
ISTORE_CHANGES_RETENTION = env_int("ISTORE_CHANGES_RETENTION", 7 * 24 * 3600)
ISTORE_FETCH_SLOTS = env_int("ISTORE_FETCH_SLOTS", 4)
ISTORE_PIXEL_SLOTS = env_int("ISTORE_PIXEL_SLOTS", 1)
ISTORE_FFMPEG_SLOTS = env_int("ISTORE_FFMPEG_SLOTS", 1)

# Similarity search (search/): the per-worker cache of packed vectors for exact
# search, and the HNSW parameters of _create_index (usearch).
ISTORE_SEARCH_CACHE_BYTES = env_int("ISTORE_SEARCH_CACHE_BYTES", 256 * MiB)
ISTORE_SEARCH_INDEX_CACHE = env_int("ISTORE_SEARCH_INDEX_CACHE", 4)
ISTORE_SEARCH_EXPANSION = env_int("ISTORE_SEARCH_EXPANSION", 128)
ISTORE_SEARCH_CONNECTIVITY = env_int("ISTORE_SEARCH_CONNECTIVITY", 16)
ISTORE_SEARCH_EXPANSION_ADD = env_int("ISTORE_SEARCH_EXPANSION_ADD", 128)
ISTORE_SEARCH_INDEX_DTYPE = os.environ.get("ISTORE_SEARCH_INDEX_DTYPE", "f32")
# Vectors _create_index reads from the database and adds to the index at a time
# (its memory beside the index: 10,000 x 1280 float32 is 51 MB, twice).
ISTORE_SEARCH_BUILD_BATCH = max(1, env_int("ISTORE_SEARCH_BUILD_BATCH", 10000))

# Recognition (recognition/): compute the built-in features of every picture
# that is written, in the background, as jobs. `make run` turns it on.
ISTORE_FEATURES = env_bool("ISTORE_FEATURES", False)

# The image proxy (processing/, objects/signing.py, sources/http/): animated
# images, format negotiation, signed URLs, stale-if-error. See docs/processing.md.
ISTORE_MAX_ANIMATION_PIXELS = env_int("ISTORE_MAX_ANIMATION_PIXELS", 500_000_000)
# Secrets for signed URLs, comma-separated: the first signs, all verify. Empty: off.
ISTORE_URL_SIGNING_KEYS = env_list("ISTORE_URL_SIGNING_KEYS")
# A processed request without format= behaves as format=auto (negotiated by Accept).
ISTORE_AUTO_FORMAT = env_bool("ISTORE_AUTO_FORMAT", False)
# Seconds past its freshness a cached http source may be served when its origin fails.
ISTORE_STALE_IF_ERROR = env_int("ISTORE_STALE_IF_ERROR", 86400)

# --- Jobs (jobs/): long verbs run by workers, see docs/deploy.md --------------

# The queue engine: django-tasks with its database backend (the tasks live in istore's own database).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# A verb estimated to take longer than this runs as a job even without Prefer: respond-async.
ISTORE_JOBS_SYNC_SECONDS = env_float("ISTORE_JOBS_SYNC_SECONDS", 30.0)
# How often a running job's worker writes its progress and heartbeat, and how
# long without one before another worker takes the job over.
ISTORE_JOBS_HEARTBEAT = env_float("ISTORE_JOBS_HEARTBEAT", 1.0)
ISTORE_JOBS_LEASE = env_float("ISTORE_JOBS_LEASE", 60.0)
# Runs of a job lost with their worker before the job fails (worker_lost).
ISTORE_JOBS_MAX_ATTEMPTS = env_int("ISTORE_JOBS_MAX_ATTEMPTS", 3)
# Seconds a finished job stays readable at /_jobs/{id}.
ISTORE_JOBS_RETENTION = env_int("ISTORE_JOBS_RETENTION", 7 * 86400)
# Seconds an idle worker waits before it looks for queued jobs again.
ISTORE_JOBS_POLL = env_float("ISTORE_JOBS_POLL", 0.5)
# CPU niceness of a worker process: requests on the same host come first.
ISTORE_JOBS_NICE = env_int("ISTORE_JOBS_NICE", 10)

# --- The S3 protocol (s3/) ----------------------------------------------------

# HOST:PORT (or unix:PATH) where gunicorn also listens and answers S3 there;
# empty: no S3 listener. `make run` sets 127.0.0.1:9000.
ISTORE_S3_BIND = os.environ.get("ISTORE_S3_BIND", "")
# Virtual-host style: {bucket}.ISTORE_S3_DOMAIN (which ALLOWED_HOSTS then admits, with its subdomains).
ISTORE_S3_DOMAIN = os.environ.get("ISTORE_S3_DOMAIN", "").strip().strip(".").lower()
if ISTORE_S3_DOMAIN:
    ALLOWED_HOSTS += [ISTORE_S3_DOMAIN, "." + ISTORE_S3_DOMAIN]
if ISTORE_S3_BIND:
    try:
        int(ISTORE_S3_BIND.rpartition(":")[2]) if not ISTORE_S3_BIND.startswith("unix:") else None
    except ValueError:
        raise ImproperlyConfigured(f"ISTORE_S3_BIND must be HOST:PORT or unix:PATH, not {ISTORE_S3_BIND!r}") from None

# --- Logging -----------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ISTORE_LOG_LEVEL", "WARNING")},
    "loggers": {
        # One JSON line per request (method, path, status, ms, bytes, kind).
        "istore.requests": {
            "handlers": ["console"],
            "level": "INFO" if env_bool("ISTORE_REQUEST_LOG", False) else "WARNING",
            "propagate": False,
        },
    },
}
