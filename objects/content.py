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
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile

from . import durable
from .errors import BadRequest, PayloadTooLarge
from .mediatypes import FALLBACK_TYPE, guess_type

CHUNK = 256 * 1024


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


def _store_temp_file(temp, key, content_type, digests, size, head, folder):
    """Move a finished temporary file into storage and describe it."""
    if not content_type or content_type == FALLBACK_TYPE:
        content_type = guess_type(key, head)
    temp.seek(0)
    sha256, md5 = digests
    return StoredContent(save_durably(temp, new_content_name(folder)), size, content_type, sha256.hexdigest(),
                         md5.hexdigest())


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
        digest, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        size = 0
        head = b""
        while True:
            chunk = read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise too_large(size)
            if len(head) < 8192:
                head += chunk[: 8192 - len(head)]
            digest.update(chunk)
            md5.update(chunk)
            temp.write(chunk)
            writeback.wrote(size)
        if expected_length is not None and size != expected_length:
            raise BadRequest(
                f"The body ended after {size} of {expected_length} bytes; nothing was stored.",
                code="incomplete_upload",
            )
        temp.size = size
        temp.flush()
        return _store_temp_file(temp, key, content_type, (digest, md5), size, head, folder)
    finally:
        _close_quietly(temp)


def store_uploaded_file(uploaded, key):
    """Store a file Django parsed from a multipart body."""
    if uploaded.size > settings.ISTORE_MAX_UPLOAD_BYTES:
        raise too_large(uploaded.size)
    digest, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    head = b""
    uploaded.seek(0)
    for chunk in uploaded.chunks(CHUNK):
        if len(head) < 8192:
            head += chunk[: 8192 - len(head)]
        digest.update(chunk)
        md5.update(chunk)
    content_type = uploaded.content_type
    if not content_type or content_type == FALLBACK_TYPE:
        content_type = guess_type(uploaded.name or key, head)
    uploaded.seek(0)
    return StoredContent(save_durably(uploaded), uploaded.size, content_type, digest.hexdigest(),
                         md5.hexdigest())


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


