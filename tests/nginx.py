"""istore under gunicorn (its own SQLite) behind a real nginx, configured as docs/deploy.md says."""
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from tests.deploy.conftest import start, stop, wait_http
from tests.servers import free_port, manage, unavailable

NGINX_CONF = """
daemon off;
{user}
worker_processes {nginx_workers};
error_log {work}/nginx-error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    include {mime_types};
    upstream istore {{ server 127.0.0.1:{app_port}; keepalive 8; }}
{cache_zone}
    server {{
        listen 127.0.0.1:{port};
        merge_slashes off;
        location / {{
            proxy_pass http://istore;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
{cache}
        }}
{accel}
    }}
}}
"""

# The cache of docs/deploy.md ("nginx caches content"), plus a header telling the tests what it did.
CACHE_ZONE = """    proxy_cache_path {work}/nginx-cache levels=1:2 keys_zone=istore:10m max_size=1g inactive=10m;
    map $http_accept $istore_format {{
        ~*image/avif  avif;
        ~*image/webp  webp;
        default       "";
    }}"""
CACHE = """
            proxy_cache istore;
            proxy_cache_key $scheme$proxy_host$request_uri$istore_format;
            proxy_ignore_headers Cache-Control Expires;
            proxy_cache_revalidate on;
            proxy_cache_lock on;
            proxy_cache_use_stale updating;
            proxy_cache_background_update on;
            add_header X-Cache-Status $upstream_cache_status always;"""


def accel_location(cache_dir):
    """The internal location of docs/sources.md, for ``cache_dir``."""
    return f"""
        location /_accel/ {{
            internal;
            alias {cache_dir}/;
            etag off;
            if_modified_since off;
            add_header ETag $upstream_http_etag;
            add_header Last-Modified $upstream_http_last_modified;
            add_header X-Content-Type-Options $upstream_http_x_content_type_options;
            add_header Content-Security-Policy $upstream_http_content_security_policy;
        }}"""


@contextmanager
def istore_behind_nginx(tmp_path, settings, cache=False, nginx_workers=1):
    """Start istore (2 workers, with the ``settings`` environment) and nginx in
    front of it, with the internal X-Accel location and, with ``cache``,
    nginx's proxy_cache; yields ``{"app": URL, "nginx": URL, "data": path, "env": dict}``."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        unavailable("nginx is not installed (apt-get install nginx-light)")
    data_dir = tmp_path / "data"
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "ISTORE_REDIS_URL", "ISTORE_STORAGE")}
    env.update({
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": "nginx-test-" + "x" * 40,
        "ISTORE_DATA_DIR": str(data_dir),
        "ISTORE_ALLOW_ANONYMOUS_WRITES": "true",
        "ISTORE_ALLOW_LOOPBACK_SOURCES": "true",
        "ISTORE_ACCESS_LOG": "/dev/null",
        **settings,
    })
    manage("migrate", "--noinput", "-v0", env=env)
    log = open(tmp_path / "servers.log", "ab")
    app_port, port = free_port(), free_port()
    app = start([str(Path(sys.executable).parent / "gunicorn"), "istore_site.wsgi", "-c", "gunicorn.conf.py",
                 "-w", "2", "--bind", f"127.0.0.1:{app_port}"], env, log)
    conf = tmp_path / "nginx.conf"
    # pytest's temporary directories are 0700: nginx's workers run as root to
    # read them (test_cache_files_are_readable_by_other_users covers the modes).
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(
        user=user, work=tmp_path, nginx_workers=nginx_workers, mime_types="/etc/nginx/mime.types", app_port=app_port, port=port,
        accel=accel_location(data_dir / "cache"), cache_zone=CACHE_ZONE.format(work=tmp_path) if cache else "",
        cache=CACHE if cache else ""))
    server = start([nginx, "-c", str(conf), "-p", str(tmp_path)], env, log)
    try:
        wait_http(f"http://127.0.0.1:{app_port}/_health", app)
        wait_http(f"http://127.0.0.1:{port}/_health", server)
        yield {"app": f"http://127.0.0.1:{app_port}", "nginx": f"http://127.0.0.1:{port}", "data": data_dir,
               "env": env}
    finally:
        stop(server)
        stop(app)
        log.close()
