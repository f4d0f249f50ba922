"""
Decoding ``Content-Encoding: aws-chunked`` bodies.

SDKs stream uploads in S3's own chunked framing (inside or without HTTP's
``Transfer-Encoding: chunked``)::

    <hex size>[;chunk-signature=<sig>]\\r\\n<bytes>\\r\\n ... 0[;chunk-signature=<sig>]\\r\\n
    [x-amz-checksum-crc32:<base64>\\r\\n [x-amz-trailer-signature:<sig>\\r\\n]]\\r\\n

``ChunkedReader.read(n)`` hands out the decoded bytes as they arrive (a
chunk is never held whole: a part may be sent as one 5 GiB chunk), verifies
each chunk's signature once its last byte went by (each chained to the
previous one, from the request's own signature), and collects the trailing
headers, whose signature it verifies too. Any mismatch raises an S3Error,
which aborts the store: a body that fails here stores nothing.
"""
from hashlib import sha256

from .errors import S3Error

MAX_LINE = 4096
READ_SIZE = 256 * 1024


class ChunkedReader:
    def __init__(self, read, identity=None, signed=False, trailer=False):
        self._read = read
        self.identity = identity
        self.signed = signed
        self.expect_trailer = trailer
        self.trailers = {}
        self._buffer = b""
        self._left = 0  # bytes of the current chunk still to hand out
        self._done = False
        self._previous = identity.seed_signature if signed else ""
        self._chunk_signature = ""
        self._hash = None

    def read(self, size=READ_SIZE):
        """Up to ``size`` decoded bytes; b"" at the end of the body."""
        while not self._done and self._left == 0:
            self._start_chunk()
        if self._done:
            return b""
        if not self._buffer:
            self._fill()
        data = self._buffer[: min(size, self._left)]
        self._buffer = self._buffer[len(data):]
        self._left -= len(data)
        if self._hash is not None:
            self._hash.update(data)
        if self._left == 0:
            self._end_chunk()
        return data

    def _fill(self):
        chunk = self._read(READ_SIZE)
        if not chunk:
            raise S3Error("IncompleteBody", "The aws-chunked body ended in the middle of a chunk.")
        self._buffer += chunk

    def _line(self):
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise S3Error("InvalidRequest", "An aws-chunked chunk header or trailer line is too long.")
            self._fill()
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        try:
            return line.decode("ascii")
        except UnicodeDecodeError:
            raise S3Error("InvalidRequest", "An aws-chunked chunk header is not ASCII.") from None

    def _start_chunk(self):
        header = self._line()
        size_text, _, extension = header.partition(";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise S3Error("InvalidRequest", f"Bad aws-chunked chunk header {header[:80]!r}.") from None
        if size < 0:
            raise S3Error("InvalidRequest", "A negative aws-chunked chunk size.")
        if self.signed:
            name, _, signature = extension.partition("=")
            if name.strip() != "chunk-signature" or not signature:
                raise S3Error("SignatureDoesNotMatch", "An aws-chunked chunk carries no chunk-signature.")
            self._chunk_signature = signature.strip()
            self._hash = sha256()
        self._left = size
        if size == 0:
            self._end_chunk(last=True)

    def _end_chunk(self, last=False):
        if self.signed:
            expected = self.identity.chunk_signature(self._previous, self._hash.hexdigest())
            if expected != self._chunk_signature:
                raise S3Error("SignatureDoesNotMatch", "The chunk signature we calculated does not match the one "
                              "you provided.")
            self._previous = expected
        if last:
            self._read_trailer()
            self._done = True
            return
        if self._line() != "":
            raise S3Error("IncompleteBody", "An aws-chunked chunk is longer than its header says.")

    def _read_trailer(self):
        lines = []
        while True:
            line = self._line() if (self._buffer or not self._at_eof()) else ""
            if line == "":
                break
            lines.append(line)
        signature = None
        text = ""
        for line in lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "x-amz-trailer-signature":
                signature = value.strip()
                continue
            self.trailers[name] = value.strip()
            text += f"{name}:{value.strip()}\n"
        if self.expect_trailer and self.signed and self.trailers:
            expected = self.identity.trailer_signature(self._previous, text)
            if signature != expected:
                raise S3Error("SignatureDoesNotMatch", "The trailer signature we calculated does not match the one "
                              "you provided.")

    def _at_eof(self):
        chunk = self._read(READ_SIZE)
        if chunk:
            self._buffer += chunk
            return False
        return True
