"""
Bucket operations. A bucket is a top-level directory holding at least one
key: ``CreateBucket`` creates the directory's own item (``/photos/``),
``DeleteBucket`` deletes it when nothing else is under it.
"""
from django.utils import timezone

from objects import keyrange, listing, writing
from objects.models import Item

from . import documents, names, responses
from .errors import S3Error

OWNER_ID = "istore"


def owner_element(user):
    """An ``Owner`` element (ID and DisplayName both the username, or anonymous)."""
    name = user.get_username() if user is not None else "anonymous"
    return [("ID", name), ("DisplayName", name)]


def _creation_date(bucket):
    own = Item.objects.by_key(names.bucket_prefix(bucket))
    if own is not None:
        return own.created
    first = next(listing.iter_items(names.bucket_prefix(bucket), batch_size=1, fields=("created",)), None)
    return first["created"] if first else timezone.now()


def all_buckets():
    """The names of every top-level directory that is a valid bucket name, in order."""
    for entry in listing.iter_entries("/", fields=("id",)):
        if "_prefix" in entry:
            name = entry["_prefix"][1:-1]
            if names.is_bucket_name(name):
                yield name


def list_buckets(s3):
    entries = [("Bucket", [("Name", name), ("CreationDate", _creation_date(name))]) for name in all_buckets()]
    return responses.xml(documents.document("ListAllMyBucketsResult", [
        ("Owner", owner_element(s3.user)),
        ("Buckets", entries),
    ]))


def create_bucket(s3):
    names.check_bucket_name(s3.bucket)
    body = documents.read_body(s3.request, 64 * 1024)
    if body.strip():
        documents.parse(body, "CreateBucketConfiguration")  # the region is istore's; the document must parse
    if names.bucket_exists(s3.bucket):
        own = Item.objects.by_key(names.bucket_prefix(s3.bucket))
        if own is not None and own.owner_id is not None and s3.user is not None and own.owner_id != s3.user.pk:
            raise S3Error("BucketAlreadyExists", "The requested bucket name is not available: another user created "
                          "it.", BucketName=s3.bucket)
        raise S3Error("BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and "
                      "you already own it.", BucketName=s3.bucket)
    writing.write(names.bucket_prefix(s3.bucket), {}, owner=s3.user)
    return responses.empty(headers={"Location": f"/{s3.bucket}"})


def head_bucket(s3):
    names.require_bucket(s3.bucket)
    return responses.empty(headers={"x-amz-bucket-region": "us-east-1"})


def delete_bucket(s3):
    names.require_bucket(s3.bucket)
    prefix = names.bucket_prefix(s3.bucket)
    if keyrange.exists(Item.objects.filter(keyrange.under(prefix)).exclude(key=prefix)):
        raise S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty.", BucketName=s3.bucket)
    writing.delete_tree(prefix)
    return responses.empty(204)


def get_location(s3):
    names.require_bucket(s3.bucket)
    return responses.xml(documents.document("LocationConstraint"))


def get_versioning(s3):
    names.require_bucket(s3.bucket)
    return responses.xml(documents.document("VersioningConfiguration"))
