"""
What the S3 protocol keeps besides the namespace itself.

- ``Credential``: an access key id and its secret, belonging to a Django
  user. The secret is kept as given: SigV4 is an HMAC keyed by it, so the
  server needs it in the clear (AWS and MinIO keep theirs the same way).
- ``MultipartUpload`` and ``UploadPart``: uploads in progress. Each part is a
  blob in the content storage (folder ``multipart``, which
  ``cleanup_content`` leaves alone); completing an upload assembles them into
  one item's content and deletes the rows and blobs.
- ``PartLayout``: the part sizes of content assembled from parts, by blob
  name, for ``GetObject?partNumber=N``. A row is deleted when its blob is
  (``receivers``).
"""
import secrets
import string

from django.conf import settings
from django.db import models

from objects.models import BytewiseTextField

ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits


def new_access_key():
    return "IS" + "".join(secrets.choice(ACCESS_KEY_ALPHABET) for _ in range(18))


def new_secret_key():
    return secrets.token_urlsafe(30)[:40]


class Credential(models.Model):
    access_key = models.CharField(max_length=128, unique=True, default=new_access_key)
    secret_key = models.CharField(max_length=128, default=new_secret_key)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="s3_credentials")
    description = models.CharField(max_length=200, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "S3 credential"

    def __str__(self):
        return self.access_key


class MultipartUpload(models.Model):
    upload_id = models.CharField(max_length=64, unique=True)
    key = BytewiseTextField()  # the istore key the upload will write (few rows: no index needed)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    metadata = models.JSONField(default=dict)  # x-amz-meta-* members
    content_type = models.CharField(max_length=255, blank=True, default="")
    headers = models.JSONField(default=dict)  # Content-Disposition, Cache-Control, ...
    checksum_algorithm = models.CharField(max_length=16, blank=True, default="")
    checksum_type = models.CharField(max_length=16, blank=True, default="")  # COMPOSITE or FULL_OBJECT
    # Set once completed: the row stays (partless) so that a retried CompleteMultipartUpload gets the same
    # answer, as on S3; cleanup_multipart deletes it with the abandoned ones.
    completed_etag = models.CharField(max_length=48, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True, db_index=True)


class UploadPart(models.Model):
    upload = models.ForeignKey(MultipartUpload, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField()
    blob = models.CharField(max_length=255)
    size = models.BigIntegerField()
    md5 = models.CharField(max_length=32)
    sha256 = models.CharField(max_length=64)
    checksums = models.JSONField(default=dict)
    created = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upload", "number"], name="s3_part_unique")]


class PartLayout(models.Model):
    blob = models.CharField(max_length=255, unique=True)
    sizes = models.JSONField()  # [bytes of part 1, bytes of part 2, ...]
