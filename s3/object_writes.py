"""
PutObject, CopyObject, DeleteObject and DeleteObjects: S3 writes through
``objects.writing``, so the change feed, search and the admin see them like
any other write, and every key and metadata rule of the namespace applies.

``PutObject`` replaces the item's metadata with its ``x-amz-meta-*``
headers, as a native raw-body PUT replaces it with ``{}``; ``CopyObject``
with the ``COPY`` directive copies the whole JSON metadata.
"""
from urllib.parse import unquote

from objects import content, keys, writing
from objects.errors import NotFound
from objects.models import Item

from . import checksums, documents, names, payload, responses
from .auth import header_text
from .errors import S3Error
from .object_reads import ObjectBody, check_conditions

META_PREFIX = "HTTP_X_AMZ_META_"
MAX_DELETE = 1000


def request_metadata(meta):
    """The item metadata a write's ``x-amz-meta-*`` headers give (names lower-cased)."""
    return {name[len(META_PREFIX):].lower().replace("_", "-"): header_text(value)
            for name, value in meta.items() if name.startswith(META_PREFIX)}


def check_write_conditions(s3, key):
    """``If-None-Match`` and ``If-Match`` of a write (``*`` or an ETag) against the object ``key`` holds now."""
    if_none_match, if_match = s3.meta.get("HTTP_IF_NONE_MATCH"), s3.meta.get("HTTP_IF_MATCH")
    if if_none_match is None and if_match is None:
        return
    item = Item.objects.by_key(key)
    current = item and (item.content_md5 or item.content_etag or ObjectBody(item).etag)
    if if_none_match is not None and item is not None:
        if if_none_match.strip().strip('"') in ("*", current):
            raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                          Condition="If-None-Match")
    if if_match is not None:
        if item is None:
            raise S3Error("NoSuchKey", "The specified key does not exist.", Key=s3.key)
        if if_match.strip().strip('"') not in ("*", current):
            raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                          Condition="If-Match")


def put_object(s3):
    if s3.meta.get("HTTP_X_AMZ_COPY_SOURCE"):
        return copy_object(s3)
    names.require_bucket(s3.bucket)
    key = s3.istore_key
    metadata = request_metadata(s3.meta)
    if keys.is_directory(key):
        return _put_folder(s3, key, metadata)
    names.writable_key(s3.bucket, s3.key)
    check_write_conditions(s3, key)
    stored = payload.store_body(s3.request, s3.identity, key, s3.meta.get("CONTENT_TYPE", ""))
    stored.headers = payload.content_headers(s3.meta)
    item, _ = writing.write(key, metadata, replace=True, stored=stored, owner=s3.user)
    headers = {"ETag": f'"{item.content_md5}"'}
    headers.update({f"x-amz-checksum-{name}": value for name, value in stored.checksums.items()})
    return responses.empty(headers=headers)


def _put_folder(s3, key, metadata):
    """A key ending in "/" is a directory: its item holds metadata only, so
    only an empty body (the "folder" objects S3 consoles make) is accepted."""
    names.writable_key(s3.bucket, s3.key)
    stored = payload.store_body(s3.request, s3.identity, key, "")
    content.delete_content(stored.name)
    if stored.size:
        raise S3Error("InvalidArgument", "A key ending in '/' is a directory in istore: it holds metadata only, "
                      "so its body must be empty.", Key=s3.key)
    writing.write(key, metadata, replace=True, owner=s3.user)
    return responses.empty(headers={"ETag": f'"{stored.md5}"'})


def parse_copy_source(header):
    """``(bucket, key)`` of an ``x-amz-copy-source`` header (``/bucket/key``, URL-encoded)."""
    path, _, query = header.partition("?")
    if query and query.split("=", 1)[-1] not in ("", "null"):
        raise S3Error("NotImplemented", "Copying an object version is not supported (istore keeps no versions).")
    source = unquote(path, errors="strict") if path else ""
    bucket, _, key = source.lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey.")
    return bucket, key


def copy_source(s3):
    """The source item and its ObjectBody for CopyObject and UploadPartCopy, its conditions checked."""
    try:
        bucket, key = parse_copy_source(s3.meta["HTTP_X_AMZ_COPY_SOURCE"])
    except UnicodeDecodeError:
        raise S3Error("InvalidArgument", "The copy source is not UTF-8 once decoded.") from None
    names.check_bucket_name(bucket)
    item = Item.objects.by_key(names.istore_key(bucket, key))
    if item is None:
        names.require_bucket(bucket)
        raise S3Error("NoSuchKey", "The specified key does not exist.", Key=key)
    body = ObjectBody(item)
    try:
        if check_conditions(s3.meta, body.etag, body.last_modified, prefix="HTTP_X_AMZ_COPY_SOURCE_IF_"):
            raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                          Condition="x-amz-copy-source-If-None-Match")
    except BaseException:
        body.close()
        raise
    return item, body


def copy_object(s3):
    names.require_bucket(s3.bucket)
    destination = names.writable_key(s3.bucket, s3.key)
    directive = s3.meta.get("HTTP_X_AMZ_METADATA_DIRECTIVE", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive; use COPY or REPLACE.")
    item, body = copy_source(s3)
    try:
        if item.key == destination and directive == "COPY":
            raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to copy an object to "
                          "itself without changing the object's metadata, storage class, website redirect location "
                          "or encryption attributes.")
        if directive == "COPY":
            metadata, content_type = item.metadata, body.content_type
            headers = dict(item.content_headers) if item.has_content else {}
        else:
            metadata, content_type = request_metadata(s3.meta), s3.meta.get("CONTENT_TYPE", "")
            headers = payload.content_headers(s3.meta)
        with body.open() as handle:
            stored = content.store_stream(handle.read, destination, content_type, expected_length=body.size)
    finally:
        body.close()
    stored.headers = headers
    stored.checksums = {name: value for name, value in item.content_checksums.items() if "-" not in value}
    written, _ = writing.write(destination, metadata, replace=True, stored=stored, owner=s3.user)
    return responses.xml(documents.document("CopyObjectResult", [
        ("LastModified", written.updated), ("ETag", f'"{written.content_md5}"')]))


def delete_object(s3):
    names.require_bucket(s3.bucket)
    try:
        writing.delete(keys.validate_key(s3.istore_key))
    except NotFound:
        pass  # S3 deletes are idempotent
    return responses.empty(204)


def delete_objects(s3):
    names.require_bucket(s3.bucket)
    body = documents.read_body(s3.request, 2 * 1024 * 1024)
    checksums.verify_bytes(s3.meta, body)
    root = documents.parse(body, "Delete")
    quiet = (documents.text(root, "Quiet", "false") or "").strip().lower() == "true"
    wanted = root.findall("Object")
    if not wanted or len(wanted) > MAX_DELETE:
        raise S3Error("MalformedXML", f"A Delete request names 1 to {MAX_DELETE} objects.")
    results = []
    for element in wanted:
        key = documents.text(element, "Key")
        if key is None:
            raise S3Error("MalformedXML", "Every Object of a Delete request needs a Key.")
        results.append(_delete_one(s3.bucket, key, documents.text(element, "VersionId")))
    children = [entry for entry in results if not (quiet and entry[0] == "Deleted")]
    return responses.xml(documents.document("DeleteResult", children))


def _delete_one(bucket, key, version):
    if version not in (None, "", "null"):
        return ("Error", [("Key", key), ("VersionId", version), ("Code", "NotImplemented"),
                          ("Message", "istore keeps no object versions.")])
    try:
        writing.delete(keys.validate_key(names.istore_key(bucket, key)))
    except NotFound:
        pass
    except keys.InvalidKey as exc:
        return ("Error", [("Key", key), ("Code", "InvalidArgument"), ("Message", exc.detail)])
    return ("Deleted", [("Key", key)])
