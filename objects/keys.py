"""
Keys: validation, the embedded-source rule, and the ``self://`` codec.

A key is the request path percent-decoded once (§1). Everything here works on
plain ``str`` and knows nothing of HTTP or the database, so it is tested (and
property-tested) on its own.
"""
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from .errors import BadRequest

MAX_KEY_BYTES = 4096
VERBS = ("_search", "_create_index", "_expand", "_duplicates", "_bulk", "_changes")
# The first "/" followed by "<scheme>://" splits a key into dir and source.
SOURCE_RE = re.compile(r"/([0-9a-z]+)://")
# Long keys are ordered and indexed through their first characters, the
# ``key_prefix`` column of every table that lists keys (objects.Item,
# search.Vector; see objects.keyrange): a PostgreSQL b-tree entry holds at
# most 2704 bytes, and 512 characters are at most 2048 UTF-8 bytes.
PREFIX_CHARS = 512


class InvalidKey(BadRequest):
    code = "invalid_key"


def key_from_request(meta, path_info):
    """The validated key of a request.

    Django re-percent-encodes bytes that are not UTF-8 when it decodes the
    path, which would make ``/a%FF`` and ``/a%25FF`` the same key. So the key
    is decoded from the raw request target when the server passes it on
    (gunicorn's RAW_URI, uWSGI's REQUEST_URI), and from Django's ``path_info``
    otherwise.
    """
    target = meta.get("RAW_URI") or meta.get("REQUEST_URI")
    if not target:
        return validate_key(path_info)
    if not target.startswith("/"):
        target = urlsplit(target).path or "/"  # absolute-form request target
    raw = unquote_to_bytes(target.split("?", 1)[0])
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidKey("The key is not valid UTF-8; percent-encode UTF-8 bytes only.") from None
    return validate_key(key)


def validate_key(key):
    """Return ``key`` if it is a valid key (§1), else raise InvalidKey."""
    if not key.startswith("/"):
        raise InvalidKey("A key is an absolute path: it must start with '/'.")
    size = len(key.encode("utf-8", errors="surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"The key is {size} bytes long; at most {MAX_KEY_BYTES} bytes are allowed.")
    for char in key:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise InvalidKey(
                f"The key contains the control character U+{ord(char):04X}; "
                "NUL and C0/C1 control characters are not allowed in keys."
            )
    return key


def is_reserved(key):
    """True for paths that are never keys: a first segment starting with '_'."""
    return key.startswith("/_")


def split_verb(key):
    """Split ``/dir/_verb`` into ``("/dir/", "_verb")``; ``(key, None)`` otherwise."""
    head, _, last = key.rpartition("/")
    if last in VERBS:
        return head + "/", last
    return key, None


def is_directory(key):
    return key.endswith("/")


@dataclass(frozen=True)
class ParsedKey:
    """A key split by the embedded-source rule."""

    key: str
    dir: str  # the directory the key lists under directly
    source: str | None  # the embedded source URL, as written in the key
    scheme: str | None


def parse_key(key):
    """Split a key into its directory and embedded source URL (§1)."""
    match = SOURCE_RE.search(key)
    if match:
        split = match.start() + 1
        return ParsedKey(key, key[:split], key[split:], match.group(1))
    return ParsedKey(key, key[: key.rfind("/") + 1], None, None)


def dir_of(key):
    """The directory a key lists under directly (``/a/b/`` for ``/a/b/`` itself)."""
    return parse_key(key).dir


def prefix_upper_bound(prefix):
    """The least string above every string that starts with ``prefix``, or None
    when there is none (an empty prefix, or one made of U+10FFFF only).

    Bytewise, ``prefix <= k < bound`` holds exactly for the keys that start
    with ``prefix``: the last character becomes the next code point (past the
    surrogates, which no key holds), so the directory ``/a/`` gives ``/a0``
    and the find prefix ``/photos/ca`` gives ``/photos/cb``.
    """
    while prefix:
        code = ord(prefix[-1]) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def resolve_self(dir_, target):
    """Resolve the part after ``self://`` into ``(key, query)``.

    ``target`` is ``P?Q``: it splits at the first raw "?", ``P`` is
    percent-decoded once and is the key (relative to ``dir_`` unless it starts
    with "/"), ``Q`` is the query applied to it.
    """
    path, _, query = target.partition("?")
    try:
        path = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidKey("The self:// path percent-decodes to bytes that are not UTF-8.") from None
    while path.startswith("./"):
        path = path[2:]
    key = path if path.startswith("/") else dir_ + path
    return validate_key(key), query


def escape_for_self(key):
    """Escape a key so that ``self://`` + the result names it again (§8)."""
    return key.replace("%", "%25").replace("?", "%3F")
