"""
ListObjectsV2 and ListObjects: a page of a bucket's keys through
``objects.listing``, keyset-paged, so a page costs what the page holds
however large the bucket: keys past the bucket's directory are S3 keys, an
S3 prefix is a key prefix, a delimiter folds keys with the skip-scan of
native ``delimiter=/`` listings (any delimiter string, by S3's rule).

The continuation token is the last key (or common prefix) of the page,
base64url-encoded; ``start-after`` and ``marker`` are keys. The bucket's own
item (``/photos/``) is the directory, not an object, and is never listed.
"""
import base64
import binascii
from urllib.parse import quote

from objects import keys, listing

from . import documents, names, responses
from .errors import S3Error
from .object_reads import EMPTY_MD5

MAX_KEYS = 1000
FIELDS = ("content_size", "content_md5", "content_etag", "content_name", "updated")


def _max_keys(params):
    text = params.get("max-keys", str(MAX_KEYS))
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise S3Error("InvalidArgument", "max-keys must be an integer from 0 to 1000.", ArgumentName="max-keys",
                      ArgumentValue=text)
    return min(value, MAX_KEYS)


def _valid(key):
    try:
        keys.validate_key(key)
        return True
    except keys.InvalidKey:
        return False


def encode_token(key):
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii")


def _position(key):
    """True when ``key`` can be a listing position: any text but NUL (which no database column holds)."""
    return "\x00" not in key


def decode_token(token, prefix):
    try:
        key = base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        key = ""
    if not key.startswith(prefix) or not _position(key):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect.",
                      ArgumentName="continuation-token")
    return key


def page(bucket, prefix, delimiter, after, max_keys, owner):
    """``(entries, truncated)``: up to ``max_keys`` rows and ``{"_prefix"}`` dicts."""
    root = names.bucket_prefix(bucket)
    full_prefix = root + prefix
    if max_keys == 0 or not _valid(full_prefix):
        return [], False
    fields = FIELDS + (("owner__username",) if owner else ())
    if delimiter:
        rows = listing.iter_entries(full_prefix, after, batch_size=max_keys + 2,
                                    fold=listing.delimiter_fold(full_prefix, delimiter), fields=fields)
    else:
        rows = listing.iter_items(full_prefix, after, batch_size=max_keys + 2, fields=fields)
    entries = []
    for entry in rows:
        if entry.get("key") == root:
            continue  # the bucket's own item
        if len(entries) == max_keys:
            return entries, True
        entries.append(entry)
    return entries, False


def _after(params, root, names_):
    """The key a page starts after, from the continuation token or start-after/marker."""
    token_name, start_name = names_
    if params.get(token_name):
        return decode_token(params[token_name], root)
    start = params.get(start_name)
    if start:
        if not _position(start):
            raise S3Error("InvalidArgument", f"{start_name} is not a valid key.", ArgumentName=start_name)
        return root + start
    return None


def list_objects(s3):
    names.require_bucket(s3.bucket)
    params = s3.params
    v2 = params.get("list-type") == "2"
    if params.get("list-type") not in (None, "2"):
        raise S3Error("InvalidArgument", "list-type must be 2.", ArgumentName="list-type")
    encoding = params.get("encoding-type")
    if encoding not in (None, "", "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request", ArgumentName="encoding-type")
    encode = (lambda text: quote(text, safe="/")) if encoding == "url" else (lambda text: text)
    root = names.bucket_prefix(s3.bucket)
    prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
    max_keys = _max_keys(params)
    after = _after(params, root, ("continuation-token", "start-after") if v2 else ("", "marker"))
    owner = not v2 or params.get("fetch-owner") == "true"
    entries, truncated = page(s3.bucket, prefix, delimiter, after, max_keys, owner)
    contents, common = [], []
    for entry in entries:
        if "_prefix" in entry:
            common.append(("CommonPrefixes", [("Prefix", encode(entry["_prefix"][len(root):]))]))
        else:
            contents.append(("Contents", _contents(entry, root, encode, owner)))
    last = entries[-1] if entries else None
    last_key = (last.get("_prefix") or last["key"]) if last else None
    # S3 url-encodes the Prefix element in V2 answers only (botocore decodes it there only).
    head = [("Name", s3.bucket), ("Prefix", encode(prefix) if v2 else prefix)]
    if v2:
        head += [("KeyCount", len(entries)), ("MaxKeys", max_keys)]
        head += [("Delimiter", encode(delimiter) if delimiter else None), ("IsTruncated", truncated)]
        head += [("ContinuationToken", params.get("continuation-token")),
                 ("NextContinuationToken", encode_token(last_key) if truncated else None),
                 ("StartAfter", encode(params["start-after"]) if params.get("start-after") else None)]
    else:
        head += [("Marker", encode(params.get("marker", ""))), ("MaxKeys", max_keys),
                 ("Delimiter", encode(delimiter) if delimiter else None), ("IsTruncated", truncated),
                 ("NextMarker", encode(last_key[len(root):]) if truncated and delimiter else None)]
    head.append(("EncodingType", "url" if encoding == "url" else None))
    return responses.xml(documents.document("ListBucketResult", head + contents + common))


def _contents(row, root, encode, owner):
    size = row["content_size"] if row["content_name"] else 0
    etag = (row["content_md5"] or row["content_etag"]) if row["content_name"] else EMPTY_MD5
    fields = [("Key", encode(row["key"][len(root):])), ("LastModified", row["updated"]), ("ETag", f'"{etag}"'),
              ("Size", size or 0), ("StorageClass", "STANDARD")]
    if owner:
        name = row.get("owner__username") or "anonymous"
        fields.append(("Owner", [("ID", name), ("DisplayName", name)]))
    return fields


def list_versions(s3):
    """ListObjectVersions: istore keeps no versions, so every object is its
    own only version, ``null`` (what S3 answers for a bucket that never had
    versioning); tools that clean or sync by versions work unchanged."""
    names.require_bucket(s3.bucket)
    params = s3.params
    root = names.bucket_prefix(s3.bucket)
    prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
    max_keys = _max_keys(params)
    marker = params.get("key-marker")
    if marker and not _position(marker):
        raise S3Error("InvalidArgument", "key-marker is not a valid key.", ArgumentName="key-marker")
    entries, truncated = page(s3.bucket, prefix, delimiter, root + marker if marker else None, max_keys, True)
    versions, common = [], []
    for entry in entries:
        if "_prefix" in entry:
            common.append(("CommonPrefixes", [("Prefix", entry["_prefix"][len(root):])]))
            continue
        fields = _contents(entry, root, lambda text: text, True)
        versions.append(("Version", fields[:1] + [("VersionId", "null"), ("IsLatest", True)] + fields[1:]))
    last = entries[-1] if entries else None
    next_marker = ((last.get("_prefix") or last["key"])[len(root):]) if truncated else None
    return responses.xml(documents.document("ListVersionsResult", [
        ("Name", s3.bucket), ("Prefix", prefix), ("KeyMarker", marker or ""), ("VersionIdMarker", ""),
        ("NextKeyMarker", next_marker), ("NextVersionIdMarker", "null" if truncated else None),
        ("MaxKeys", max_keys), ("Delimiter", delimiter or None), ("IsTruncated", truncated), *versions, *common]))

