"""
Multipart uploads: parts streamed to storage, assembled without being held
in memory.

Each ``UploadPart`` goes through ``s3.payload.store_body`` (so
``objects.content.store_stream``) into the ``multipart`` folder of the
content storage, and its row records size, MD5 and checksums. Completion
streams the listed parts, in order, through ``store_stream`` once more into
one new blob (SHA-256 and MD5 computed on the way, as for any upload), then
writes the item through ``objects.writing`` and deletes the parts. No lock is
held while the bytes are copied: a concurrent completion of the same upload
loses at the commit, where the upload row is deleted once.

The ETag is S3's: the MD5 of the parts' binary MD5s, then ``-N``; the part
sizes are kept (``PartLayout``) for ``GetObject?partNumber=``. Uploads left
unfinished are deleted by ``manage.py cleanup_multipart`` (docs/operations.md).
"""
import base64
import hashlib
import secrets

from django.db import IntegrityError, transaction
from django.db.models import Q

from objects import content, writing
from objects.models import Item

from . import checksums, documents, names, payload, responses
from .errors import S3Error
from .models import MultipartUpload, PartLayout, UploadPart
from .object_reads import parse_range
from .object_writes import check_write_conditions, copy_source, request_metadata

MiB = 1024 * 1024
MIN_PART = 5 * MiB
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10000
MAX_OBJECT = 5 * 1024 * 1024 * MiB  # S3's largest object, 5 TiB
FOLDER = "multipart"
FULL_OBJECT_ONLY = ("crc64nvme",)
CRC = ("crc32", "crc32c", "crc64nvme")


def _upload(s3, completed=False):
    """The upload the request names (a completed one only when ``completed``); NoSuchUpload otherwise."""
    upload = MultipartUpload.objects.filter(upload_id=s3.params.get("uploadId", "")).select_related("owner").first()
    if upload is None or upload.key != s3.istore_key or (upload.completed_etag and not completed):
        raise S3Error("NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the "
                      "upload may have been aborted or completed.", UploadId=s3.params.get("uploadId", ""))
    return upload


def _part_number(text):
    try:
        number = int(text)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= MAX_PARTS:
        raise S3Error("InvalidArgument", f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive.",
                      ArgumentName="partNumber", ArgumentValue=str(text))
    return number


def create_upload(s3):
    names.require_bucket(s3.bucket)
    key = names.writable_key(s3.bucket, s3.key)
    algorithm = s3.meta.get("HTTP_X_AMZ_CHECKSUM_ALGORITHM", "")
    algorithm = checksums.algorithm_name(algorithm) if algorithm else ""
    kind = s3.meta.get("HTTP_X_AMZ_CHECKSUM_TYPE", "").upper()
    if kind not in ("", "COMPOSITE", "FULL_OBJECT") or (kind and not algorithm):
        raise S3Error("InvalidRequest", "x-amz-checksum-type is COMPOSITE or FULL_OBJECT, with "
                      "x-amz-checksum-algorithm.")
    kind = kind or ("FULL_OBJECT" if algorithm in FULL_OBJECT_ONLY else "COMPOSITE" if algorithm else "")
    if (kind == "FULL_OBJECT" and algorithm not in CRC) or (kind == "COMPOSITE" and algorithm in FULL_OBJECT_ONLY):
        raise S3Error("InvalidRequest", f"The {kind} checksum type is not supported for {algorithm.upper()}.")
    upload = MultipartUpload.objects.create(
        upload_id=secrets.token_urlsafe(36), key=key, owner=s3.user, metadata=request_metadata(s3.meta),
        content_type=s3.meta.get("CONTENT_TYPE", ""), headers=payload.content_headers(s3.meta),
        checksum_algorithm=algorithm, checksum_type=kind)
    headers = {"x-amz-checksum-algorithm": algorithm.upper(), "x-amz-checksum-type": kind} if algorithm else {}
    return responses.xml(documents.document("InitiateMultipartUploadResult", [
        ("Bucket", s3.bucket), ("Key", s3.key), ("UploadId", upload.upload_id)]), headers=headers)


def upload_part(s3):
    upload = _upload(s3)
    number = _part_number(s3.params.get("partNumber"))
    if s3.meta.get("HTTP_X_AMZ_COPY_SOURCE"):
        return _upload_part_copy(s3, upload, number)
    stored = payload.store_body(s3.request, s3.identity, upload.key, "", folder=FOLDER, limit=MAX_PART,
                                default_algorithm=upload.checksum_algorithm)
    _save_part(upload, number, stored)
    headers = {"ETag": f'"{stored.md5}"'}
    headers.update({f"x-amz-checksum-{name}": value for name, value in stored.checksums.items()})
    return responses.empty(headers=headers)


def _upload_part_copy(s3, upload, number):
    item, body = copy_source(s3)
    try:
        span = (0, body.size - 1)
        header = s3.meta.get("HTTP_X_AMZ_COPY_SOURCE_RANGE")
        if header:
            span = parse_range(header, body.size)
            if span is not None and not header.strip().endswith("-") and int(header.rsplit("-", 1)[1]) >= body.size:
                raise S3Error("InvalidRange", f"Range specified is not valid for source object of size: {body.size}",
                              status=416)
            if span is None:
                raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form "
                              "bytes=first-last where first and last are the zero-based offsets of the first and "
                              "last bytes to copy")
        length = max(span[1] - span[0] + 1, 0)
        with body.open() as handle:
            handle.seek(span[0])
            remaining = [length]

            def read(size):
                data = handle.read(min(size, remaining[0])) if remaining[0] else b""
                remaining[0] -= len(data)
                return data

            stored = content.store_stream(read, upload.key, "", expected_length=length, folder=FOLDER,
                                          limit=MAX_PART)
    finally:
        body.close()
    if upload.checksum_algorithm:
        with content.open_content(stored.name) as handle:
            tracker = checksums.Tracker([upload.checksum_algorithm])
            for chunk in iter(lambda: handle.read(content.CHUNK), b""):
                tracker.update(chunk)
        stored.checksums = tracker.values()
    part = _save_part(upload, number, stored)
    return responses.xml(documents.document("CopyPartResult", [
        ("LastModified", part.created), ("ETag", f'"{stored.md5}"')]))


def _save_part(upload, number, stored):
    """Record a stored part (replacing an earlier one of that number); NoSuchUpload if the upload went away."""
    fields = dict(blob=stored.name, size=stored.size, md5=stored.md5, sha256=stored.etag, checksums=stored.checksums)
    try:
        with transaction.atomic():
            old = UploadPart.objects.select_for_update().filter(upload=upload, number=number).first()
            if old is None:
                part = UploadPart.objects.create(upload=upload, number=number, **fields)
            else:
                replaced = old.blob
                for name, value in fields.items():
                    setattr(old, name, value)
                old.save()
                part = old
                transaction.on_commit(lambda: content.delete_content(replaced))
            if not MultipartUpload.objects.filter(pk=upload.pk, completed_etag="").exists():
                raise IntegrityError("the upload is gone")
    except IntegrityError:
        content.delete_content(stored.name)
        raise S3Error("NoSuchUpload", "The upload was aborted or completed while this part was sent.",
                      UploadId=upload.upload_id) from None
    return part


def _requested_parts(s3):
    body = documents.read_body(s3.request, 4 * MiB)
    root = documents.parse(body, "CompleteMultipartUpload")
    listed = []
    for element in root.findall("Part"):
        number, etag = documents.text(element, "PartNumber"), documents.text(element, "ETag")
        if number is None or etag is None:
            raise S3Error("MalformedXML", "Every Part needs a PartNumber and an ETag.")
        listed.append((_part_number(number.strip()), etag.strip().strip('"'), element))
    if not listed:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                      "published schema: a CompleteMultipartUpload names at least one part.")
    return listed


def _completion(s3, etag, checksums=None):
    return responses.xml(documents.document("CompleteMultipartUploadResult", [
        ("Location", f"/{s3.bucket}/{s3.key}"), ("Bucket", s3.bucket), ("Key", s3.key), ("ETag", f'"{etag}"'),
        *[(f"Checksum{name.upper()}", value) for name, value in (checksums or {}).items()],
    ]))


def complete_upload(s3):
    upload = _upload(s3, completed=True)
    listed = _requested_parts(s3)
    if upload.completed_etag:
        item = Item.objects.by_key(upload.key)
        same = item is not None and item.content_md5 == upload.completed_etag
        return _completion(s3, upload.completed_etag, item.content_checksums if same else None)
    check_write_conditions(s3, upload.key)
    if any(a[0] >= b[0] for a, b in zip(listed, listed[1:])):
        raise S3Error("InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be "
                      "specified in order by part number.", UploadId=upload.upload_id)
    stored_parts = {part.number: part for part in upload.parts.all()}
    parts = []
    for number, etag, element in listed:
        part = stored_parts.get(number)
        if part is None or part.md5 != etag:
            raise S3Error("InvalidPart", "One or more of the specified parts could not be found. The part may not "
                          "have been uploaded, or the specified entity tag may not match the part's entity tag.",
                          UploadId=upload.upload_id, PartNumber=str(number), ETag=etag)
        for name, value in part.checksums.items():
            given = documents.text(element, "Checksum" + name.upper())
            if given is not None and given.strip() != value:
                raise S3Error("InvalidPart", f"The {name.upper()} of part {number} does not match.",
                              UploadId=upload.upload_id, PartNumber=str(number))
        parts.append(part)
    for part in parts[:-1]:
        if part.size < MIN_PART:
            raise S3Error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.",
                          ProposedSize=str(part.size), MinSizeAllowed=str(MIN_PART), PartNumber=str(part.number),
                          ETag=part.md5)
    stored = _assemble(upload, parts)
    etag = hashlib.md5(b"".join(bytes.fromhex(part.md5) for part in parts), usedforsecurity=False).hexdigest()
    stored.md5 = f"{etag}-{len(parts)}"
    stored.headers = upload.headers
    stored.checksums = _object_checksums(upload, parts, stored.checksums)
    _check_full_checksum(s3.meta, stored.checksums)
    try:
        with transaction.atomic():
            if not MultipartUpload.objects.filter(pk=upload.pk, completed_etag="").update(
                    completed_etag=stored.md5):
                raise S3Error("NoSuchUpload", "The upload was completed or aborted meanwhile.",
                              UploadId=upload.upload_id)
            item, _ = writing.write(upload.key, upload.metadata, replace=True, stored=stored,
                                    owner=upload.owner or s3.user)
            PartLayout.objects.create(blob=stored.name, sizes=[part.size for part in parts])
            UploadPart.objects.filter(upload=upload).delete()
    except BaseException:
        content.delete_content(stored.name)
        raise
    names_ = [part.blob for part in stored_parts.values()]
    transaction.on_commit(lambda: [content.delete_content(name) for name in names_])
    response = _completion(s3, item.content_md5, stored.checksums)
    for name, value in stored.checksums.items():
        response[f"x-amz-checksum-{name}"] = value
        response["x-amz-checksum-type"] = upload.checksum_type
    return response


class _Concatenated:
    """``read(n)`` over several blobs in turn, one open at a time."""

    def __init__(self, blobs):
        self.blobs, self.handle = list(blobs), None

    def read(self, size):
        while True:
            if self.handle is None:
                if not self.blobs:
                    return b""
                self.handle = content.open_content(self.blobs.pop(0))
            data = self.handle.read(size)
            if data:
                return data
            self.handle.close()
            self.handle = None

    def close(self):
        if self.handle is not None:
            self.handle.close()


def _assemble(upload, parts):
    source = _Concatenated(part.blob for part in parts)
    full = upload.checksum_algorithm if upload.checksum_type == "FULL_OBJECT" else ""
    tracker = checksums.Tracker([full] if full else [])

    def read(size):
        data = source.read(size)
        tracker.update(data)
        return data

    try:
        stored = content.store_stream(read, upload.key, upload.content_type,
                                      expected_length=sum(part.size for part in parts), limit=MAX_OBJECT)
    finally:
        source.close()
    stored.checksums = tracker.values()
    return stored


def _object_checksums(upload, parts, full):
    """The object's checksum: full-object (computed while assembling) or composite (of the parts' own)."""
    algorithm = upload.checksum_algorithm
    if not algorithm or upload.checksum_type == "FULL_OBJECT":
        return full
    values = [part.checksums.get(algorithm) for part in parts]
    if None in values:
        return {}
    tracker = checksums.Tracker([algorithm])
    tracker.update(b"".join(base64.b64decode(value) for value in values))
    return {algorithm: f"{tracker.values()[algorithm]}-{len(parts)}"}


def _check_full_checksum(meta, computed):
    for name, value in computed.items():
        given = meta.get("HTTP_X_AMZ_CHECKSUM_" + name.upper())
        if given is not None and given.strip() != value.split("-")[0] and given.strip() != value:
            raise S3Error("BadDigest", f"The {name.upper()} you specified did not match the calculated checksum.")


def abort_upload(s3):
    upload = _upload(s3)
    blobs = list(upload.parts.values_list("blob", flat=True))
    with transaction.atomic():
        upload.delete()
        transaction.on_commit(lambda: [content.delete_content(name) for name in blobs])
    return responses.empty(204)


def _owner(user):
    name = user.get_username() if user is not None else "anonymous"
    return [("ID", name), ("DisplayName", name)]


def list_parts(s3):
    upload = _upload(s3)
    try:
        maximum = min(int(s3.params.get("max-parts", 1000)), 1000)
        marker = int(s3.params.get("part-number-marker") or 0)
    except ValueError:
        raise S3Error("InvalidArgument", "max-parts and part-number-marker are integers.") from None
    if maximum < 0:
        raise S3Error("InvalidArgument", "max-parts must be 0 or more.")
    found = list(upload.parts.filter(number__gt=marker).order_by("number")[: maximum + 1])
    truncated = len(found) > maximum
    found = found[:maximum]
    entries = [("Part", [("PartNumber", part.number), ("LastModified", part.created), ("ETag", f'"{part.md5}"'),
                         ("Size", part.size),
                         *[(f"Checksum{name.upper()}", value) for name, value in part.checksums.items()]])
               for part in found]
    return responses.xml(documents.document("ListPartsResult", [
        ("Bucket", s3.bucket), ("Key", s3.key), ("UploadId", upload.upload_id),
        ("Initiator", _owner(upload.owner)), ("Owner", _owner(upload.owner)), ("StorageClass", "STANDARD"),
        ("PartNumberMarker", marker), ("NextPartNumberMarker", found[-1].number if found else None),
        ("MaxParts", maximum), ("IsTruncated", truncated),
        ("ChecksumAlgorithm", upload.checksum_algorithm.upper() or None), *entries]))


def list_uploads(s3):
    names.require_bucket(s3.bucket)
    params, root = s3.params, names.bucket_prefix(s3.bucket)
    prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
    key_marker, id_marker = params.get("key-marker", ""), params.get("upload-id-marker", "")
    try:
        maximum = min(int(params.get("max-uploads", 1000)), 1000)
    except ValueError:
        raise S3Error("InvalidArgument", "max-uploads is an integer.") from None
    uploads = MultipartUpload.objects.filter(key__startswith=root + prefix, completed_etag="").select_related("owner")
    if key_marker:
        after = Q(key__gt=root + key_marker)
        if id_marker:
            after |= Q(key=root + key_marker, upload_id__gt=id_marker)
        uploads = uploads.filter(after)
    entries, common, seen = [], [], set()
    truncated = False
    for upload in uploads.order_by("key", "upload_id").iterator():
        key = upload.key[len(root):]
        if delimiter and delimiter in key[len(prefix):]:
            folded = key[: key.index(delimiter, len(prefix)) + len(delimiter)]
            if folded in seen:
                continue
            seen.add(folded)
            entry = ("CommonPrefixes", [("Prefix", folded)])
        else:
            entry = ("Upload", [("Key", key), ("UploadId", upload.upload_id), ("Initiator", _owner(upload.owner)),
                                ("Owner", _owner(upload.owner)), ("StorageClass", "STANDARD"),
                                ("Initiated", upload.created)])
        if len(entries) + len(common) == maximum:
            truncated = True
            break
        (common if entry[0] == "CommonPrefixes" else entries).append((entry, upload))
    last = (entries + common)[-1][1] if entries or common else None
    return responses.xml(documents.document("ListMultipartUploadsResult", [
        ("Bucket", s3.bucket), ("KeyMarker", key_marker), ("UploadIdMarker", id_marker),
        ("NextKeyMarker", last.key[len(root):] if truncated and last else None),
        ("NextUploadIdMarker", last.upload_id if truncated and last else None),
        ("Delimiter", delimiter or None), ("Prefix", prefix or None), ("MaxUploads", maximum),
        ("IsTruncated", truncated), *[entry for entry, _ in entries], *[entry for entry, _ in common]]))
