"""
``manage.py import_urls FILE --prefix /dir/``: register a list of source URLs.

Each line of FILE is a URL, or ``URL<TAB>{json metadata}``; it registers the
key ``prefix + URL``, an embedded-source key (SPEC §1) that istore fetches
and caches on first GET. Blank lines and lines starting with ``#`` are
skipped. Metadata is merged (JSON Merge Patch, as a POST does) into what the
key already holds, so running the same file again is harmless: the import is
resumable by nature.

A bad line (not a URL, a scheme istore cannot fetch, a key over 4096 bytes,
metadata that is not a JSON object) is reported with its line number and
counted; the others are imported. Keys are written in batches through
``objects.writing.upsert_many`` (one transaction per batch, as ``_expand``
does), so a million URLs take minutes, not hours; when the database refuses
a batch, it is retried line by line so only the offending line fails.
"""
import json
import re

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from objects.errors import ApiError
from objects import keys, sources, writing
from objects.management import (
    LineError, Lines, Run, add_progress_argument, check_addressable, directory_prefix, metadata_option,
    open_input, positive_int,
)

# The scheme part of the embedded-source rule (objects.keys.SOURCE_RE).
URL_RE = re.compile(r"^[0-9a-z]+://")
LINE_LIMIT = 8 * 1024 * 1024  # a 4 KiB key plus 1 MiB of metadata fits many times over


def compose(first, second):
    """One merge patch that applies ``first`` and then ``second`` (``second`` wins)."""
    result = dict(first)
    for name, value in second.items():
        if isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = compose(result[name], value)
        else:
            result[name] = value
    return result


def parse_line(text, prefix, defaults):
    """Return ``(key, metadata patch)`` for one line, or raise LineError."""
    url, tab, meta_text = text.partition("\t")
    url = url.strip()
    if not URL_RE.match(url):
        raise LineError(f"{url[:200]!r} is not a source URL; expected e.g. http://example.com/a.jpg "
                        "(a lowercase scheme, then ://)")
    metadata = {}
    if tab and meta_text.strip():
        try:
            metadata = json.loads(meta_text)
        except ValueError as exc:
            raise LineError(f"the metadata after the tab is not valid JSON ({exc})") from None
    key = prefix + url
    try:
        keys.validate_key(key)
        sources.check_scheme(key)
        check_addressable(key)
        metadata = writing.check_metadata(metadata)
        if defaults:
            metadata = writing.check_metadata(compose(defaults, metadata))
    except ApiError as exc:
        raise LineError(exc.detail) from None
    return key, metadata


class Command(BaseCommand):
    help = ("Register every URL listed in FILE (one per line, optionally URL<TAB>{json}) "
            "as the key PREFIX + URL.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="The list of URLs, or - for stdin.")
        parser.add_argument("--prefix", required=True, help="The directory the URLs go under, e.g. /web/.")
        parser.add_argument("--metadata",
                            help="A JSON object merged into every item; a line's own metadata wins.")
        parser.add_argument("--batch-size", type=positive_int, default=1000,
                            help="Keys per database transaction (default 1000).")
        add_progress_argument(parser)

    def handle(self, file, prefix=None, metadata=None, batch_size=1000, **options):
        prefix = directory_prefix(prefix)
        defaults = metadata_option(metadata)
        stream, size = open_input(file)
        self.run = Run(self, options, total=size, unit="B", unit_scale=True, desc="import",
                       outcomes=("created", "updated", "failed"))
        lines = Lines(stream)
        try:
            batch, number = [], 0
            while True:
                before = lines.consumed
                raw = lines.readline(LINE_LIMIT)
                if not raw:
                    break
                number += 1
                entry = self.entry(number, raw, lines, prefix, defaults)
                if entry is not None:
                    batch.append(entry)
                if len(batch) >= batch_size:
                    self.flush(batch)
                    batch = []
                self.run.advance(lines.consumed - before)
            if batch:
                self.flush(batch)
        finally:
            self.run.close()
            if file != "-":
                stream.close()
        if options.get("verbosity", 1):
            self.stdout.write(f"Imported {file} into {prefix}: {self.run.summary()}.")
        if self.run.counts["failed"]:
            raise CommandError(f"{self.run.counts['failed']} lines failed; see the messages above. "
                               "Fix them and run the same command again: it only merges metadata.")

    def entry(self, number, raw, lines, prefix, defaults):
        """``(line number, key, metadata)`` for a line to import, None for a blank, comment or bad one."""
        try:
            if not lines.at_start:
                lines.skip_rest()
                raise LineError(f"the line is longer than {LINE_LIMIT} bytes")
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise LineError("the line is not valid UTF-8") from None
            if not text.strip() or text.lstrip().startswith("#"):
                return None
            key, metadata = parse_line(text, prefix, defaults)
        except LineError as exc:
            self.fail(number, str(exc))
            return None
        return number, key, metadata

    def fail(self, number, message):
        self.run.problem(f"line {number}: {message}")
        self.run.count("failed")

    def flush(self, batch):
        """Upsert a batch in one transaction; line by line when the database refuses it."""
        try:
            created, updated = writing.upsert_many([(key, metadata) for _, key, metadata in batch],
                                                   batch_size=len(batch))
        except (ApiError, DatabaseError) as exc:
            if len(batch) == 1:
                detail = getattr(exc, "detail", None) or (
                    f"the database refused it ({exc.__class__.__name__}: {exc})")
                self.fail(batch[0][0], detail)
                return
            for entry in batch:
                self.flush([entry])
            return
        self.run.count("created", created)
        self.run.count("updated", updated)
        for number, key, _ in batch:
            self.run.note(f"line {number}: registered {key!r}")
