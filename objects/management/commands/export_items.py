"""
``manage.py export_items OUT.jsonl [--prefix /dir/]``: back up the namespace.

One JSON object per line, in bytewise key order: the item exactly as the API
renders it (``Item.as_dict()``: ``_id``, ``_filepath``, ``metadata``,
``_created``, ``_updated``, ``_content``) and, for an item with uploaded
content, the bytes as base64 in a last field ``_data``. ``import_items``
reads this back.

Memory stays bounded whatever the size of the store or of one blob: items
come from ``objects.listing.iter_items`` one batch at a time, and a blob is
streamed from storage into the line in chunks, never held whole. ``_data`` is
always the last field, so ``import_items`` can stream a blob back out of a
line too long to hold in memory.

A file is written under a temporary name next to it and renamed at the end,
so an interrupted export never leaves a truncated backup under the real name.
"""
import base64
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from objects import content as content_store
from objects import keyrange, listing
from objects.models import Item
from objects.management import DATA_MARK, Run, add_progress_argument, directory_prefix

# Multiple of 3, so every chunk but the last encodes without base64 padding.
CHUNK = 3 * 256 * 1024


class SkipItem(Exception):
    """This item cannot be exported (its blob is missing or damaged); the run goes on."""


def dumps(data):
    """Compact UTF-8 JSON; ``\\u`` escapes when a string holds lone surrogates."""
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class TextSink:
    """Adapts a text stream (``call_command(stdout=StringIO())``) to byte writes."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, data):
        self.stream.write(data.decode("utf-8"))

    def flush(self):
        self.stream.flush()


@contextmanager
def snapshot():
    """Read the whole export from one snapshot where that costs writers nothing.

    On PostgreSQL a REPEATABLE READ transaction gives a point-in-time view
    without blocking anyone. On SQLite a transaction would take the write lock
    (settings use IMMEDIATE), stalling the live service for the whole export,
    so there each batch of the listing is consistent but the whole is not:
    stop writers for a point-in-time SQLite backup (docs/operations.md).
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


class Command(BaseCommand):
    help = (
        "Export the items under a prefix (default: all) as JSON Lines, one item per line in key order, "
        "uploaded content included as base64. Restore with import_items."
    )

    def add_arguments(self, parser):
        parser.add_argument("output", help="File to write (replaced when it exists), or - for stdout.")
        parser.add_argument("--prefix", default="/",
                            help="Export only the keys under this directory (default /).")
        add_progress_argument(parser)

    def handle(self, output, prefix="/", **options):
        prefix = directory_prefix(prefix)
        with self.open_output(output) as (out, seekable):
            # The data owns stdout when it goes there; the summary then goes to stderr.
            report = self.stderr if output == "-" else self.stdout
            with snapshot():
                run = Run(self, options, total=Item.objects.filter(keyrange.under(prefix)).count(), unit="item", desc="export",
                          outcomes=("exported", "with content", "failed"))
                content_bytes = 0
                try:
                    for item in listing.iter_items(prefix):
                        try:
                            content_bytes += self.write_item(out, item, seekable)
                        except SkipItem as exc:
                            run.problem(f"item {item.id} {item.key!r}: {exc}; not exported.")
                            run.count("failed")
                        else:
                            run.count("exported")
                            if item.has_content:
                                run.count("with content")
                        run.advance()
                finally:
                    run.close()
        if options.get("verbosity", 1):
            target = "stdout" if output == "-" else output
            counts = run.counts
            report.write(f"Exported {counts['exported']} items from {prefix} to {target} "
                         f"({counts['with content']} with content, {content_bytes} bytes of it); "
                         f"{counts['failed']} failed.")
        if run.counts["failed"]:
            raise CommandError(f"{run.counts['failed']} items could not be exported; see the messages above.")

    @contextmanager
    def open_output(self, output):
        """Yield ``(binary sink, seekable)``; a file appears under its name only when complete."""
        if output == "-":
            stream = getattr(self.stdout, "_out", self.stdout)
            stream.flush()
            buffer = getattr(stream, "buffer", None)
            sink = buffer if buffer is not None else TextSink(stream)
            yield sink, False
            sink.flush()
            return
        directory = os.path.dirname(os.path.abspath(output))
        if os.path.isdir(output):
            raise CommandError(
                f"{output} is a directory; name the file to write, e.g. {output.rstrip('/')}/backup.jsonl."
            )
        if not os.path.isdir(directory):
            raise CommandError(f"The directory {directory} does not exist; create it first.")
        try:
            # Created 0600: a backup holds every item and every blob.
            handle = tempfile.NamedTemporaryFile(
                dir=directory, prefix="." + os.path.basename(output) + ".", suffix=".partial", delete=False
            )
        except OSError as exc:
            raise CommandError(f"Cannot write in {directory}: {exc.strerror or exc}.") from None
        try:
            with handle:
                yield handle, True
            os.replace(handle.name, output)
        except BaseException:
            try:
                os.unlink(handle.name)
            except OSError:
                pass
            raise

    def write_item(self, out, item, seekable):
        """Write one line; return the number of content bytes written."""
        data = item.as_dict()
        if not item.has_content:
            out.write(dumps(data) + b"\n")
            return 0
        try:
            blob = content_store.open_content(item.content_name)
        except Exception as exc:  # noqa: BLE001 - OSError locally, client errors from S3
            # Replaced or deleted since the listing read the row, or lost.
            raise SkipItem(f"its content blob cannot be read ({exc.__class__.__name__})") from None
        start = out.tell() if seekable else None
        with blob:
            # Read before writing anything: S3 files fetch on first read, so a
            # missing blob shows here, while the line can still be left out.
            first = self.read(blob)
            out.write(dumps(data)[:-1] + DATA_MARK)
            try:
                self.copy_base64(blob, out, item, first)
            except SkipItem:
                if not seekable:
                    # Half a line is already on stdout: the stream is broken.
                    raise CommandError(
                        f"item {item.id} {item.key!r}: its content is damaged; export aborted."
                    ) from None
                out.seek(start)
                out.truncate()
                raise
        out.write(b'"}\n')
        return item.content_size or 0

    @staticmethod
    def read(blob):
        try:
            return blob.read(CHUNK)
        except Exception as exc:  # noqa: BLE001 - OSError locally, client errors from S3
            raise SkipItem(f"reading its content failed ({exc.__class__.__name__})") from None

    def copy_base64(self, blob, out, item, chunk):
        """Stream the blob as base64, checking it against the recorded size and SHA-256."""
        digest = hashlib.sha256()
        size = 0
        carry = b""
        while chunk:
            size += len(chunk)
            digest.update(chunk)
            chunk = carry + chunk
            # Storage may return short reads: encode whole 3-byte groups only.
            cut = len(chunk) - len(chunk) % 3
            out.write(base64.b64encode(chunk[:cut]))
            carry = chunk[cut:]
            chunk = self.read(blob)
        out.write(base64.b64encode(carry))
        if size != item.content_size or digest.hexdigest() != item.content_etag:
            raise SkipItem(
                f"its content blob is {size} bytes with SHA-256 {digest.hexdigest()}, but the item records "
                f"{item.content_size} bytes with {item.content_etag}"
            )
