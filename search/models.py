"""
The packed side table of vectors and the record of built ANN indexes.

``Vector`` holds one row per (item, metadata field) whose value is a vector: a
non-empty list of numbers (not booleans), finite and not all zero. The vector
is stored normalised to unit length as little-endian float32 bytes, so an
exact search is one matrix-vector product over the concatenated blobs and
never parses an item's JSON. The row carries the item's ``key`` and
``key_prefix`` (its first ``objects.keys.PREFIX_CHARS`` characters, the
indexable part on PostgreSQL) so a search reads a directory as a key range,
bytewise, with the same query as every listing (``objects.keyrange``).

``Vector.id`` doubles as the change sequence: a row is never updated; a
changed vector replaces its row with a new one (a new, higher id), a removed
one deletes it. An ANN index built from the rows with ``id <= watermark`` is
therefore kept exact by scanning the rows with ``id > watermark`` (written
since) and dropping index hits whose row is gone (deleted or replaced since).
"""

from django.db import models

from objects.digests import sha256_hex
from objects.keys import PREFIX_CHARS
from objects.models import BytewiseCharField, BytewiseTextField

# Metadata fields with longer names are not tracked as vectors. An entry of
# the (field, dim, key_prefix) index must fit PostgreSQL's b-tree limit of
# 2704 bytes whatever the characters (4 UTF-8 bytes at most): 4·512 for the
# key prefix leaves room for 158 characters of field name; 150 keeps a margin.
MAX_FIELD_CHARS = 150


class Vector(models.Model):
    id = models.BigAutoField(primary_key=True)
    item = models.ForeignKey("objects.Item", on_delete=models.CASCADE, related_name="+", db_index=False)
    # Wider than MAX_FIELD_CHARS: the column predates the limit, and narrowing
    # it would rewrite the whole table; longer names are never written.
    field = models.CharField(max_length=200)
    dim = models.PositiveIntegerField()
    key = BytewiseTextField()
    key_prefix = BytewiseCharField(max_length=PREFIX_CHARS)
    vector = models.BinaryField()  # unit-length float32, little-endian, dim * 4 bytes

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "field"], name="search_vector_item_field")]
        indexes = [
            # Exact scans: every vector of one field and length under a directory.
            models.Index(fields=["field", "dim", "key_prefix"], name="search_vector_range"),
            # Index freshness: the rows of one field written since a watermark.
            models.Index(fields=["field", "dim", "id"], name="search_vector_changes"),
        ]

    def __str__(self):
        return f"{self.key} [{self.field}] ({self.dim})"


def slot_of(directory, field):
    """A fixed-size name for (directory, field): directories may be 4 kB long."""
    return sha256_hex(f"{directory}\x00{field}")


class VectorIndex(models.Model):
    """One built approximate index: the vectors of ``field`` with ``dim``
    numbers under ``dir`` whose rows have ``id <= watermark``."""

    slot = models.CharField(max_length=64, editable=False)  # slot_of(dir, field)
    dir = BytewiseTextField()
    field = models.CharField(max_length=200)  # as Vector.field
    dim = models.PositiveIntegerField()
    storage_name = models.CharField(max_length=255)  # in the default Django storage
    watermark = models.BigIntegerField()  # highest Vector.id the index may hold
    count = models.BigIntegerField()  # vectors in the index when it was built
    library = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    built_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["slot", "dim"], name="search_index_slot_dim")]
        verbose_name = "vector index"
        verbose_name_plural = "vector indexes"

    def __str__(self):
        return f"{self.dir} [{self.field}] ({self.dim})"
