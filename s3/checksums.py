"""
The checksums S3 clients send and ask for: CRC32, CRC32C, CRC64/NVME, SHA-1
and SHA-256 (``x-amz-checksum-*``, base64 of the big-endian digest), and
``Content-MD5``.

The CRCs come from awscrt (the AWS Common Runtime, which botocore itself
uses for them; CRC32 from zlib), the hashes from hashlib. A ``Tracker``
updates every checksum a request asks for while its body streams to storage,
so verifying costs no second pass over the bytes.
"""
import base64
import binascii
import hashlib
import zlib

from awscrt import checksums as crt

from .errors import S3Error


class _Crc:
    def __init__(self, function, width):
        self.function, self.width, self.value = function, width, 0

    def update(self, data):
        self.value = self.function(data, self.value)

    def digest(self):
        return self.value.to_bytes(self.width, "big")


ALGORITHMS = {
    "crc32": lambda: _Crc(zlib.crc32, 4),
    "crc32c": lambda: _Crc(crt.crc32c, 4),
    "crc64nvme": lambda: _Crc(crt.crc64nvme, 8),
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "sha256": hashlib.sha256,
}
DIGEST_SIZE = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


def algorithm_name(value):
    """The lower-case name of an algorithm given as ``CRC32C``, ``crc32c``, ...; InvalidRequest if unknown."""
    name = (value or "").strip().lower()
    if name not in ALGORITHMS:
        raise S3Error("InvalidRequest", f"Checksum algorithm {value!r} is not supported; use one of "
                      "CRC32, CRC32C, CRC64NVME, SHA1, SHA256.")
    return name


def check_value(name, value):
    """Raise InvalidRequest unless ``value`` is base64 of a digest of the algorithm's size."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_SIZE[name]:
        raise S3Error("BadDigest", f"The x-amz-checksum-{name} value is not a {name.upper()} digest, so it cannot "
                      "match the body.")
    return value


class Tracker:
    """The checksums of a body as it streams: ``update`` every chunk, then ``values()``."""

    def __init__(self, names):
        self.states = {name: ALGORITHMS[name]() for name in names}

    def update(self, data):
        for state in self.states.values():
            state.update(data)

    def values(self):
        return {name: base64.b64encode(state.digest()).decode("ascii") for name, state in self.states.items()}


def content_md5_hex(header):
    """The hex digest a ``Content-MD5`` header (base64) names; InvalidDigest when it is not one."""
    try:
        raw = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.")
    return raw.hex()


def verify_bytes(meta, data):
    """Check a small body held in memory (an XML request) against its
    ``Content-MD5`` and ``x-amz-checksum-*`` headers; BadDigest on a mismatch."""
    header = meta.get("HTTP_CONTENT_MD5")
    if header is not None and content_md5_hex(header) != hashlib.md5(data, usedforsecurity=False).hexdigest():
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
    for name in ALGORITHMS:
        expected = meta.get("HTTP_X_AMZ_CHECKSUM_" + name.upper())
        if expected is not None:
            tracker = Tracker([name])
            tracker.update(data)
            if tracker.values()[name] != check_value(name, expected.strip()):
                raise S3Error("BadDigest", f"The {name.upper()} you specified did not match the calculated checksum.")
