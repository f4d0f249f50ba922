"""
Pieces shared by istore's management commands (``objects/management/commands``).

The commands are thin: they parse arguments, walk their input and call the
same functions as the HTTP API (``objects.writing``, ``objects.content``,
``objects.listing``). What they have in common lives here: argument checks
that end in a ``CommandError`` (a clear message, no traceback), the progress
bar on stderr, per-line problem reports that do not break the bar, the
summary line, and the reading side of the JSON Lines layout that export_items
writes and import_items reads.
"""
import argparse
import base64
import binascii
import json
import os
import sys

from django.core.management.base import CommandError
from tqdm import tqdm

from .. import keys
from ..errors import BadRequest
from ..writing import InvalidMetadata, check_metadata

MiB = 1024 * 1024
CHUNK = 256 * 1024
# export_items writes a blob as the last field of its line, "_data", so that
# import_items can find it in a line too long to parse whole and stream it.
DATA_MARK = b',"_data":"'


def directory_prefix(value, option="--prefix"):
    """Return ``value`` if it names a directory under which keys may be written."""
    if not value.startswith("/") or not value.endswith("/"):
        raise CommandError(
            f"{option} must be a directory: start and end with '/' (e.g. /photos/), not {value!r}."
        )
    try:
        keys.validate_key(value)
    except BadRequest as exc:
        raise CommandError(f"{option}: {exc.detail}") from None
    if keys.is_reserved(value):
        raise CommandError(
            f"{option} {value!r} is reserved: a first segment starting with '_' is never a key."
        )
    if keys.parse_key(value).source is not None:
        # Everything below a source URL is part of that URL, never a directory.
        raise CommandError(
            f"{option} {value!r} embeds a source URL; choose a plain directory such as /imports/."
        )
    return value


def check_addressable(key):
    """Raise BadRequest for keys the HTTP API could never reach.

    ``objects.writing`` accepts them (it trusts its callers), but a key whose
    first segment starts with '_' or whose last segment is a verb would be
    unreachable over HTTP, so importers refuse it.
    """
    if keys.is_reserved(key):
        raise BadRequest(f"{key!r} is reserved: a first segment starting with '_' is never a key.")
    if keys.split_verb(key)[1] is not None:
        raise BadRequest(f"{key!r} ends in a verb ({keys.split_verb(key)[1]}), which is never a key.")
    return key


def metadata_option(text, option="--metadata"):
    """Parse a JSON-object option, or None when it was not given."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(
            f"{option} is not valid JSON ({exc}); pass an object such as '{{\"k\": \"v\"}}'."
        ) from None
    try:
        return check_metadata(value)
    except InvalidMetadata as exc:
        raise CommandError(f"{option}: {exc.detail}") from None


def positive_int(value):
    """argparse type for batch sizes (argparse turns the error into a usage message)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value!r}")
    return number


def open_input(path):
    """Open ``path`` (``-`` is stdin) for binary reading; return ``(file, size or None)``."""
    if path == "-":
        return sys.stdin.buffer, None
    if os.path.isdir(path):
        raise CommandError(f"{path} is a directory; expected a file.")
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise CommandError(f"{path} does not exist.") from None
    except OSError as exc:
        raise CommandError(f"cannot open {path}: {exc.strerror or exc}.") from None
    size = os.fstat(handle.fileno()).st_size
    return handle, size


def add_progress_argument(parser):
    parser.add_argument(
        "--no-progress", action="store_true",
        help="Never draw the progress bar (it is drawn only when stderr is a terminal anyway).",
    )


class Run:
    """The progress bar, the counters and the problem reports of one command run.

    The bar goes to the command's stderr and only when that is a terminal, so
    logs and pipes get the summary and the problems, not carriage returns.
    Problems are written through ``tqdm.write`` so they do not tear the bar.
    """

    def __init__(self, command, options, *, total=None, unit="it", desc=None, unit_scale=False, outcomes=()):
        self.command = command
        self.stream = getattr(command.stderr, "_out", command.stderr)
        is_tty = getattr(self.stream, "isatty", lambda: False)()
        self.verbosity = options.get("verbosity", 1)
        self.bar = tqdm(
            total=total, unit=unit, desc=desc, unit_scale=unit_scale, file=self.stream,
            disable=options.get("no_progress") or not is_tty or self.verbosity == 0,
            dynamic_ncols=True, leave=False,
        )
        self.counts = {name: 0 for name in outcomes}

    def advance(self, amount=1):
        self.bar.update(amount)

    def count(self, outcome, amount=1):
        self.counts[outcome] = self.counts.get(outcome, 0) + amount
        self.bar.set_postfix(self.counts, refresh=False)

    def problem(self, message):
        """Report one bad line / file / item; the run goes on."""
        self.bar.write(message, file=self.stream)
        self.stream.flush()

    def note(self, message, level=2):
        """A message shown from ``--verbosity level`` up."""
        if self.verbosity >= level:
            self.bar.write(message, file=self.stream)

    def close(self):
        self.bar.close()

    def summary(self):
        return ", ".join(f"{count} {name}" for name, count in self.counts.items())


class LineError(Exception):
    """What is wrong with one input line, phrased for the operator."""


class Lines:
    """The input, read line by line with a size limit, counting bytes for the progress bar.

    It knows whether it stands at the start of a line, so after a failure in
    the middle of an over-long line it can skip exactly to the next one.
    """

    def __init__(self, stream):
        self.stream, self.consumed, self.at_start = stream, 0, True

    def readline(self, limit):
        data = self.stream.readline(limit)
        self.consumed += len(data)
        self.at_start = not data or data.endswith(b"\n")
        return data

    def skip_rest(self):
        while not self.at_start:
            self.readline(CHUNK)


class Base64Stream:
    """``read(n)`` over the base64 of an over-long line, decoded chunk by chunk.

    Reads with ``readline`` so it never consumes past the end of the line:
    the next line is still there for the caller afterwards.
    """

    def __init__(self, lines, pending):
        self.lines, self.pending, self.carry, self.done = lines, pending, b"", False

    def read(self, _size=-1):
        while not self.done:
            if not self.pending:
                self.pending = self.lines.readline(CHUNK)
                if not self.pending:
                    raise LineError("the file ends inside the content of this line")
            quote = self.pending.find(b'"')
            data = self.carry + (self.pending if quote < 0 else self.pending[:quote])
            if quote >= 0:
                self.done, self.pending = True, self.pending[quote + 1:]
                cut = len(data)
            else:
                self.pending = b""
                cut = len(data) - len(data) % 4  # decode whole 4-character groups only
            self.carry = data[cut:]
            if cut:
                try:
                    return base64.b64decode(data[:cut], validate=True)
                except (binascii.Error, ValueError):
                    raise LineError("_data is not valid base64") from None
        return b""

    def finish(self):
        """Read to the end of the line and check that only the closing brace follows ``_data``."""
        while not self.done:
            self.read()
        rest = self.pending
        while not self.lines.at_start:
            more = self.lines.readline(CHUNK)
            rest += more[:64]  # enough to see whether more than "}" follows
        if rest.strip() != b"}":
            raise LineError("_data must be the last field of the line, as export_items writes it")
