"""The floor for HTTP benchmarks: istore's settings and middleware, one fixed view."""
from istore_site.settings import *  # noqa: F401,F403

ROOT_URLCONF = "benchmarks.floor_urls"
