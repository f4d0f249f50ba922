#!/usr/bin/env python3
"""Memory a replay entry really holds, against what ``Entry.size`` counts (run by hand).

    cd /work/main && .venv/bin/python benchmarks/replay_entry_size.py

Builds 2,000 entries like those of a processed 1920x1080 -> 320 answer (nine
headers, an empty body), with and without the query of an uncached result
(read again on each replay), and measures them with tracemalloc.
``Entry.size`` should not be below the real figure.
"""
import os
import sys
import tempfile
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")
os.environ.setdefault("SECRET_KEY", "x" * 50)
os.environ.setdefault("ISTORE_DATA_DIR", tempfile.mkdtemp(prefix="istore-entry-size-"))

import django  # noqa: E402

django.setup()

from objects.replay import Entry  # noqa: E402

HEADERS = [("Content-Type", "image/jpeg"), ("Content-Length", "8694"), ("Cache-Control", "public, no-cache"),
           ("ETag", '"2fbd8e9f5086c3b48eb2dbcae3d2aa427609aa51"'), ("Last-Modified", "Wed, 25 Nov 2026 20:34:16 GMT"),
           ("X-Content-Type-Options", "nosniff"), ("Content-Security-Policy", "sandbox"),
           ("Referrer-Policy", "same-origin"), ("Cross-Origin-Opener-Policy", "same-origin")]
COUNT = 2000


def measure(with_query):
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = []
    for i in range(COUNT):
        key = f"/bench/file:///tmp/anchors/img/photo_{i}.jpg"
        query = f"apply=resize&w={i + 1}" if with_query else None
        entry = Entry(key, ((i, "2026-11-25 20:34:16", None), ("file", 1, i, 10**18, 322223)), key, "200 OK",
                      [(name, value + str(i)) for name, value in HEADERS], b"", query=query)
        kept.append((("127.0.0.1:8601", "http", None, f"{key}?apply=resize&w={i + 1}"), entry))
    real = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename")) / COUNT
    tracemalloc.stop()
    print(f"{'with' if with_query else 'without'} a query: {real:,.0f} bytes held per entry, "
          f"Entry.size counts {kept[0][1].size:,}")


if __name__ == "__main__":
    measure(False)
    measure(True)
