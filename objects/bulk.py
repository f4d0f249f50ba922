"""
``POST {dir}/_bulk``: many writes in one request, one JSON object a line
(NDJSON): ``{"key": K, "metadata": {...}}`` merges (RFC 7396),
``"replace": true`` replaces, ``{"key": K, "delete": true}`` deletes.

Why it is shaped this way:

- **The body is a stream.** Lines are read a chunk at a time and applied in
  batches; no more than one batch of lines (and one line of at most
  ``max_line_bytes``) is ever held, so a body of millions of lines costs the
  memory of a thousand.
- **One commit per batch, not per line.** A batch of up to ``BATCH_LINES``
  lines with distinct keys is one transaction (``objects.writing.write_many``,
  the merge, limits and signals of single writes), so a thousand lines cost
  one WAL sync on SQLite and one WAL flush on PostgreSQL. The answer is sent
  after the last commit returned, so every line it counts is durable
  (docs/durability.md). A key written twice closes the batch, so later lines
  see earlier ones as single writes would.
- **A line fails alone.** A line that is not JSON, a key that is invalid or
  outside the directory, metadata over the limit: that line is reported in
  ``errors`` with its number (from 1) and the code a single write would
  answer, and the others are written. Errors are spooled to a temporary file,
  so a body of bad lines cannot fill the memory either.
"""
import tempfile
from itertools import chain

from django.conf import settings
from django.http import StreamingHttpResponse

from istore_site.sqlite3.turns import yield_to_writer

from . import access, jsontext, keys, payloads, sources, verbs, writing
from .errors import ApiError, BadRequest

BATCH_LINES = 1000
READ_CHUNK = 64 * 1024
FIELDS = {"key", "metadata", "replace", "delete"}
TOO_LONG = object()  # a line past max_line_bytes, skipped unread


class InvalidLine(BadRequest):
    code = "invalid_line"


def max_line_bytes():
    """The longest line read: the largest metadata allowed, written with every byte escaped as ``\\u00XX``."""
    return 6 * settings.ISTORE_MAX_METADATA_BYTES + 2 * keys.MAX_KEY_BYTES + 1024


def lines(read, limit):
    """The lines of the stream ``read(n)`` gives, without their end of line;
    a line longer than ``limit`` bytes is ``TOO_LONG`` and never held whole."""
    pending, skipping = bytearray(), False
    while chunk := read(READ_CHUNK):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if not skipping:
                pending += chunk[start:end]
            yield TOO_LONG if skipping or len(pending) > limit else bytes(pending)
            pending.clear()
            skipping, start = False, end + 1
        if not skipping:
            pending += chunk[start:]
            if len(pending) > limit:
                pending.clear()
                skipping = True
    if skipping:
        yield TOO_LONG
    elif pending:
        yield bytes(pending)


def key_in(directory, key):
    """The absolute key a line names (relative to ``directory``, or absolute inside it), validated."""
    if not isinstance(key, str) or not key:
        raise InvalidLine('"key" must be a non-empty string: a key relative to the directory or absolute inside it.')
    absolute = key if key.startswith("/") else directory + key
    keys.validate_key(absolute)
    if not absolute.startswith(directory):
        raise BadRequest(f"{key!r} is outside {directory!r}: a _bulk line writes only under its directory.",
                         code="key_outside_dir")
    if keys.is_reserved(absolute) or keys.split_verb(absolute)[1]:
        raise BadRequest(f"{absolute!r} is reserved (a first segment starting with '_', or a verb): not a key.",
                         code="reserved")
    sources.check_scheme(absolute)
    return absolute


def parse_line(raw, directory):
    """The ``writing.Write`` one line asks for; ApiError when the line is bad."""
    line = jsontext.loads(raw, "The line")
    if not isinstance(line, dict):
        raise InvalidLine('A line is a JSON object: {"key": K, "metadata": {...}} (or "replace": true, '
                          'or "delete": true instead of metadata).')
    unknown = sorted(set(line) - FIELDS)
    if unknown:
        raise InvalidLine(f"Unknown field(s) {', '.join(unknown)}; a line has key, metadata, replace, delete.")
    key = key_in(directory, line.get("key"))
    replace, delete = line.get("replace", False), line.get("delete", False)
    if not isinstance(replace, bool) or not isinstance(delete, bool):
        raise InvalidLine('"replace" and "delete" are true or false.')
    if delete and ("metadata" in line or replace):
        raise InvalidLine('A "delete" line has only a key: it cannot carry metadata or "replace".')
    metadata = line.get("metadata")
    if "metadata" in line and not isinstance(metadata, dict):
        raise writing.InvalidMetadata(f"metadata must be a JSON object, not {type(metadata).__name__}.")
    # Its size and contents are checked once merged (writing.write_many), as single writes do.
    return writing.Write(key, metadata, replace=replace, delete=delete)


class Outcome:
    """What a _bulk request did: counts, and its failed lines spooled to a file."""

    def __init__(self):
        self.counts = {"created": 0, "updated": 0, "deleted": 0}
        self.errors = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)
        self.failed = 0

    def add(self, number, outcome):
        if isinstance(outcome, ApiError):
            entry = {"line": number, "error": outcome.code, "detail": outcome.detail}
            self.errors.write((b"," if self.failed else b"") + jsontext.dumps(entry).encode("utf-8"))
            self.failed += 1
        else:
            self.counts[outcome] += 1

    def response(self):
        """The answer, the errors streamed from their spool."""
        head = jsontext.dumps(self.counts)[:-1].encode("utf-8") + b',"errors":['
        size = self.errors.tell()
        self.errors.seek(0)
        body = chain([head], iter(lambda: self.errors.read(READ_CHUNK), b""), [b"]}"])
        response = StreamingHttpResponse(body, content_type="application/json")
        response["Content-Length"] = str(len(head) + size + 2)
        response._resource_closers.append(self.errors.close)
        return response


def apply(read, directory, owner=None):
    """Apply the NDJSON stream ``read(n)`` gives under ``directory``; the Outcome."""
    outcome, batch, batch_keys = Outcome(), [], set()  # batch: (line number, Write or the ApiError of a bad line)

    def flush():
        writes = [(number, line) for number, line in batch if isinstance(line, writing.Write)]
        done = {}
        if writes:
            done = dict(zip((n for n, _ in writes), writing.write_many([w for _, w in writes], owner=owner)))
        for number, line in batch:
            outcome.add(number, done.get(number, line))
        batch.clear()
        batch_keys.clear()

    for number, raw in enumerate(lines(read, max_line_bytes()), 1):
        yield_to_writer()
        if raw is TOO_LONG:
            line = BadRequest(f"The line is longer than {max_line_bytes()} bytes.", code="line_too_long")
        elif not raw.strip():
            continue
        else:
            try:
                line = parse_line(raw, directory)
            except ApiError as exc:
                line = exc
        if len(batch) >= BATCH_LINES or (isinstance(line, writing.Write) and line.key in batch_keys):
            flush()
        if isinstance(line, writing.Write):
            batch_keys.add(line.key)
        batch.append((number, line))
    flush()
    return outcome


@verbs.request_verb("_bulk", method="POST")
def bulk(request, directory):
    owner = access.check(request, write=True)
    read, _ = payloads.raw_body_reader(request)
    return apply(read, directory, owner).response()
