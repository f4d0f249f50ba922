"""
``manage.py prune_cache [--max-bytes N] [--all]``: shrink or empty this host's cache.

Without options the cache (``ISTORE_CACHE_DIR``) is trimmed to its cap
(``ISTORE_CACHE_MAX_BYTES``) by least-recently-used eviction, as istore does
after every write; ``--max-bytes N`` trims it to N bytes instead (``500M``,
``2G``: binary multiples), for example before lowering the cap or to make
room on the disk. ``--all`` removes every entry. Temporary files left by
killed workers (older than an hour, or all with ``--all``) go too.

Safe while istore runs: a request serving a value that is evicted keeps
reading it (POSIX unlink), and anything evicted is fetched or computed again
on the next request. Results shared through Redis (``ISTORE_REDIS_URL``)
are not touched: they expire on their own within ten minutes.
"""
import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from objects import cache as shared_cache

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def size(text):
    """``N`` bytes, or ``N`` with a K/M/G/T suffix (binary multiples)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def human(count):
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


class Command(BaseCommand):
    help = ("Trim this host's cache to its cap (or --max-bytes) by least-recently-used eviction, "
            "or empty it (--all).")

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--max-bytes", type=size, metavar="N",
                           help="Trim to N bytes instead of ISTORE_CACHE_MAX_BYTES (suffixes K, M, G, T allowed).")
        group.add_argument("--all", action="store_true", help="Remove every entry of the cache.")

    def handle(self, *args, **options):
        cache = shared_cache.get_cache()
        if not cache.available:
            raise CommandError(f"The cache {cache.directory} cannot be opened: {cache.error}")
        before = cache.volume()
        if options["all"]:
            entries, freed = cache.clear()
            what = "emptied"
        else:
            limit = options["max_bytes"]
            if limit is None:
                limit = settings.ISTORE_CACHE_MAX_BYTES
            entries, freed = cache.prune(limit)
            what = f"trimmed to {human(limit)}"
        after = cache.volume()
        self.stdout.write(
            f"Cache {cache.directory} {what}: freed {human(freed)} ({freed} bytes) in {entries} "
            f"{'entry' if entries == 1 else 'entries'}; it now holds {human(after)} ({after} bytes, "
            f"was {human(before)}) of its {human(settings.ISTORE_CACHE_MAX_BYTES)} cap."
        )
