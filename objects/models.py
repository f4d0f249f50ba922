"""
The namespace: one ``Item`` row per key.

- ``id`` is the public ``_id``. On SQLite Django declares it AUTOINCREMENT and
  PostgreSQL uses an identity sequence, so an id is never reused, not even
  after the newest row is deleted.
- Keys sort bytewise. A ``text`` column in SQLite compares with memcmp
  (BINARY); on PostgreSQL the columns use the "C" collation.
- Keys may be 4096 bytes but a PostgreSQL b-tree entry may not exceed ~2.7 KB,
  so uniqueness lives on ``key_hash`` and order on ``key_prefix`` (the first
  512 characters, at most 2048 bytes). Ordering by ``(key_prefix, key)`` is
  exactly ordering by ``key``: a prefix of characters is a prefix of bytes.
- ``dir`` is the materialized path: the directory the key lists under
  directly (see ``keys.parse_key``).
"""
import hashlib

from django.db import models

from . import keys


class BytewiseTextField(models.TextField):
    """A text column that sorts by UTF-8 bytes on every database."""

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params


class BytewiseCharField(models.CharField):
    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params


def hash_key(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Item(models.Model):
    id = models.BigAutoField(primary_key=True)
    key = BytewiseTextField()
    key_hash = models.CharField(max_length=64, editable=False)
    key_prefix = BytewiseCharField(max_length=keys.PREFIX_CHARS, editable=False)
    dir = BytewiseTextField(editable=False)
    metadata = models.JSONField(default=dict, blank=True)
    # Uploaded content, stored in the default Django storage under a name
    # istore makes up (never derived from the key).
    content_name = models.CharField(max_length=255, blank=True, default="", editable=False)
    content_size = models.BigIntegerField(null=True, blank=True, editable=False)
    content_type = models.CharField(max_length=255, blank=True, default="", editable=False)
    content_etag = models.CharField(max_length=80, blank=True, default="", editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key_hash"], name="item_key_unique")]
        indexes = [
            models.Index(fields=["key_prefix"], name="item_key_prefix"),
            models.Index(models.functions.Substr("dir", 1, keys.PREFIX_CHARS), name="item_dir_prefix"),
        ]
        verbose_name = "item"

    def __str__(self):
        return self.key

    def set_key(self, key):
        """Set the key and the columns derived from it."""
        self.key = key
        self.key_hash = hash_key(key)
        self.key_prefix = key[: keys.PREFIX_CHARS]
        self.dir = keys.dir_of(key)

    @property
    def has_content(self):
        return bool(self.content_name)

    def as_dict(self):
        """The item as the API renders it (§2)."""
        data = {"_id": self.id, "_filepath": self.key, "metadata": self.metadata}
        data["_created"] = self.created.isoformat() if self.created else None
        data["_updated"] = self.updated.isoformat() if self.updated else None
        if self.content_name:
            data["_content"] = {
                "size": self.content_size,
                "type": self.content_type,
                "etag": self.content_etag,
            }
        return data
