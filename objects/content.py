"""
Uploaded content: streaming request bodies into the configured storage.

Bytes go to a temporary file on disk while their SHA-256 (the strong ETag of
the native API) and MD5 (the ETag S3 clients expect) are computed, never into
memory, then into ``default_storage`` under a fresh random name that no key
can steer, by ``save_durably``: on stable storage before the call returns.
The caller swaps the item's content name inside its transaction and deletes
the old blob only after commit, so a failed or interrupted upload leaves the
previous content in place, and an item never names bytes that a power cut
could take back (docs/durability.md).
"""
import hashlib
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile

from . import durable
from .errors import BadRequest, PayloadTooLarge
from .mediatypes import FALLBACK_TYPE, guess_type

CHUNK = 1024 * 1024
HEAD = 8192  # the first bytes, kept to sniff the type from


@dataclass
class StoredContent:
    name: str
    size: int
    content_type: str
    etag: str  # hex SHA-256 of the bytes
    md5: str = ""  # the S3 ETag: hex MD5 of the bytes, or "<MD5 of the parts' MD5s>-N" (s3.multipart)
    headers: dict = field(default_factory=dict)  # Content-Disposition, Cache-Control, ... given at upload
    checksums: dict = field(default_factory=dict)  # {"crc32c": base64, ...} given or asked for at upload


def too_large(size):
    return PayloadTooLarge(
        f"The upload is {size} bytes or more; ISTORE_MAX_UPLOAD_BYTES allows "
        f"{settings.ISTORE_MAX_UPLOAD_BYTES} bytes.",
        code="upload_too_large",
    )


def new_content_name(folder="content"):
    """A fresh blob name under ``folder`` (``content``: item content, which
    ``cleanup_content`` sweeps; ``s3.multipart`` keeps parts in a folder of its own)."""
    token = uuid.uuid4().hex
    return f"{folder}/{token[:2]}/{token[2:4]}/{token}"


class Digests:
    """The SHA-256 and MD5 of bytes as they pass, their count, and the first ``HEAD`` of them:
    everything istore learns from content, in the one pass that stores it.

    MD5 (the S3 ETag) runs at a third of SHA-256's speed here (no instructions for it; SHA-256 has
    them): ~0.3 s of CPU per 100 MiB, as much as the rest of an upload. hashlib releases the GIL
    while it hashes a block, so a block's MD5 runs on a helper thread while this one computes its
    SHA-256, writes it and reads the next: on a machine with a core to spare the MD5 costs no
    time. Blocks below ``PARALLEL_BLOCK`` are hashed here (handing them over would cost more).
    """

    PARALLEL_BLOCK = 256 * 1024

    def __init__(self):
        self.sha256, self._md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.head = b""
        self._pending = None  # the helper's MD5 of the previous block, while it runs

    @property
    def md5(self):
        """The MD5 of every byte given so far (waits for the helper's last block)."""
        self._wait()
        return self._md5

    def update(self, chunk):
        self.size += len(chunk)
        if len(self.head) < HEAD:
            self.head += chunk[: HEAD - len(self.head)]
        self._wait()  # blocks reach the MD5 in order
        if len(chunk) >= self.PARALLEL_BLOCK:
            self._pending = _md5_helpers().submit(self._md5.update, chunk)
        else:
            self._md5.update(chunk)
        self.sha256.update(chunk)

    def _wait(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()


_helpers = []  # the ThreadPoolExecutor, once made
_helpers_lock = threading.Lock()


def _md5_helpers():
    """The threads that compute MD5s beside the uploads of this process, made on first use (a
    forked child makes its own: it has none of its parent's threads)."""
    with _helpers_lock:
        if not _helpers:
            _helpers.append(ThreadPoolExecutor(max_workers=2, thread_name_prefix="istore-md5"))
        return _helpers[0]


os.register_at_fork(after_in_child=_helpers.clear)


def _store_temp_file(temp, key, content_type, digests, folder):
    """Move a finished temporary file into storage and describe it."""
    if not content_type or content_type == FALLBACK_TYPE:
        content_type = guess_type(key, digests.head)
    temp.seek(0)
    return StoredContent(save_durably(temp, new_content_name(folder)), digests.size, content_type,
                         digests.sha256.hexdigest(), digests.md5.hexdigest())


def store_stream(read, key, content_type, expected_length=None, *, folder="content", limit=None):
    """Stream ``read(n)`` chunks into storage; return a StoredContent.

    ``limit`` is the largest size accepted (``ISTORE_MAX_UPLOAD_BYTES`` by
    default); ``folder`` is where the blob goes (see ``new_content_name``).
    """
    limit = settings.ISTORE_MAX_UPLOAD_BYTES if limit is None else limit
    if expected_length is not None and expected_length > limit:
        raise too_large(expected_length)
    temp = TemporaryUploadedFile("upload", content_type or FALLBACK_TYPE, 0, None)
    try:
        writeback = durable.Writeback(temp.fileno())
        digests = Digests()
        while True:
            chunk = read(CHUNK)
            if not chunk:
                break
            if digests.size + len(chunk) > limit:
                raise too_large(digests.size + len(chunk))
            digests.update(chunk)
            temp.write(chunk)
            writeback.wrote(digests.size)
        if expected_length is not None and digests.size != expected_length:
            raise BadRequest(
                f"The body ended after {digests.size} of {expected_length} bytes; nothing was stored.",
                code="incomplete_upload",
            )
        temp.size = digests.size
        temp.flush()
        return _store_temp_file(temp, key, content_type, digests, folder)
    finally:
        _close_quietly(temp)


def store_uploaded_file(uploaded, key):
    """Store a file Django parsed from a multipart body.

    Its digests were computed as it arrived when ``objects.payloads.SpoolingUploadHandler``
    spooled it (``uploaded.digests``); a file from elsewhere (in memory, or another handler)
    is read once more for them."""
    if uploaded.size > settings.ISTORE_MAX_UPLOAD_BYTES:
        raise too_large(uploaded.size)
    digests = getattr(uploaded, "digests", None)
    if digests is None or digests.size != uploaded.size:
        digests = Digests()
        uploaded.seek(0)
        for chunk in uploaded.chunks(CHUNK):
            digests.update(chunk)
    content_type = uploaded.content_type
    if not content_type or content_type == FALLBACK_TYPE:
        content_type = guess_type(uploaded.name or key, digests.head)
    uploaded.seek(0)
    return StoredContent(save_durably(uploaded), uploaded.size, content_type, digests.sha256.hexdigest(),
                         digests.md5.hexdigest())


def save_durably(file, name=None):
    """Save ``file`` (a Django ``File``) in the content storage, durably; return the name it got.

    Every path that puts content into storage goes through here: the
    namespace's raw and multipart uploads, the admin, the import commands,
    the S3 protocol's PutObject and multipart completion. Call it before the
    transaction that makes the content visible (``objects.writing.write``):
    when it returns, the bytes survive a power cut, so a committed item never
    names a file that could come back short or missing, and a crash between
    the two leaves at most an orphan blob, which ``manage.py cleanup_content``
    removes. ``name`` defaults to a fresh random content name.

    On local disk (FileSystemStorage) the file, then each directory from its
    folder up to the storage root, is fsynced (objects.durable); if that
    fails the blob is deleted and the error raised, and nothing is
    acknowledged. On S3 (django-storages) the save returns once S3 has
    answered the PUT or completed the multipart upload, which S3 does only
    after storing the object durably: nothing more is needed.
    """
    name = default_storage.save(name or new_content_name(), file)
    path = local_path(name)
    if path is not None:
        try:
            durable.make_durable(path, default_storage.location)
        except BaseException:
            delete_content(name)
            raise
    return name


def delete_content(name):
    """Delete a blob; a blob already gone is not an error."""
    if name:
        try:
            default_storage.delete(name)
        except FileNotFoundError:
            pass


def open_content(name):
    return default_storage.open(name, "rb")


def local_path(name):
    """The blob's path on this machine, or None when storage is remote."""
    try:
        return default_storage.path(name)
    except NotImplementedError:
        return None


def _close_quietly(temp):
    try:
        temp.close()
    except (OSError, FileNotFoundError):
        pass
    path = getattr(temp, "temporary_file_path", lambda: None)()
    if path and os.path.exists(path):
        try:
            os.unlink(path)
        except OSError:
            pass


