"""
Media types: one rule for what bytes are when nobody said, used by uploads
and by every source.

The bytes first: ``filetype`` reads the signatures of binary formats, so a
PNG named ``.jpg`` is served as the PNG it is. Then the name's extension,
for the text formats that have no signature (JSON, CSV, SVG, HTML). Else
``application/octet-stream``. A type an origin or a client declared is kept
only when it is a well-formed media type (``clean_type``).
"""
import mimetypes
import re

import filetype

FALLBACK_TYPE = "application/octet-stream"
SNIFF_BYTES = 8192
# A media type as a header may carry it; anything else (control characters,
# lists, garbage from an origin) is replaced by a sniffed type.
_MEDIA_TYPE_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[\x20-\x7e]*)?$")


def guess_type(name, head=b""):
    """The type of bytes starting with ``head`` (at most ``SNIFF_BYTES``) named ``name``."""
    kind = filetype.guess(head) if head else None
    if kind is not None:
        return kind.mime
    guessed, _ = mimetypes.guess_type(name.rsplit("/", 1)[-1], strict=False)
    return guessed or FALLBACK_TYPE


def clean_type(value):
    """``value`` if it is a well-formed media type that says something, else None."""
    value = (value or "").strip()
    if value and _MEDIA_TYPE_RE.match(value) and not value.lower().startswith(FALLBACK_TYPE):
        return value
    return None
