"""
S3 names onto istore keys: a bucket is a top-level directory, an object key
is the rest of the path, byte for byte (bucket ``photos``, key ``a/b.jpg``:
the istore key ``/photos/a/b.jpg``).
"""
import ipaddress
import re

from objects import keyrange, keys
from objects.models import Item

from .errors import S3Error

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_bucket_name(name):
    """S3's rules for bucket names (the general-purpose ones)."""
    if not BUCKET_RE.match(name) or ".." in name or ".-" in name or "-." in name:
        return False
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return False
    try:
        ipaddress.IPv4Address(name)
        return False
    except ValueError:
        return True


def check_bucket_name(name):
    if not is_bucket_name(name):
        raise S3Error("InvalidBucketName", "The specified bucket is not valid: bucket names are 3 to 63 lower-case "
                      "letters, digits, dots and hyphens.", BucketName=name)
    return name


def bucket_prefix(bucket):
    return f"/{bucket}/"


def istore_key(bucket, key):
    return f"/{bucket}/{key}"


def bucket_exists(bucket):
    """A bucket exists when its directory holds at least one key (its own item included)."""
    return keyrange.exists(Item.objects.filter(keyrange.under(bucket_prefix(bucket))))


def require_bucket(bucket):
    check_bucket_name(bucket)
    if not bucket_exists(bucket):
        raise S3Error("NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket)


def writable_key(bucket, key):
    """The istore key an object write goes to, or S3Error when istore cannot hold content there."""
    full = istore_key(bucket, key)
    if len(full.encode("utf-8", "surrogatepass")) > keys.MAX_KEY_BYTES:
        # istore's own limit, above S3's 1024 bytes: the two protocols name the same keys.
        raise S3Error("KeyTooLongError", f"Your key is too long: /bucket/key may be at most {keys.MAX_KEY_BYTES} "
                      "bytes.", Key=key)
    keys.validate_key(full)
    if keys.split_verb(full)[1]:
        raise S3Error("InvalidArgument", f"The key's last segment {full.rsplit('/', 1)[1]!r} is reserved by "
                      "istore (a verb); choose another name.", Key=key)
    if keys.parse_key(full).source is not None:
        raise S3Error("InvalidArgument", "This key embeds a source URL (scheme://): its bytes come from the source, "
                      "so it cannot hold uploaded content.", Key=key)
    return full
