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
import json

from django.conf import settings
from django.db import connections, models, router

from . import keys
from .batchrows import BatchRows
from .digests import sha256_hex


class Bytewise:
    """A text column that sorts by UTF-8 bytes on every database."""

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params


class BytewiseTextField(Bytewise, models.TextField):
    pass


class BytewiseCharField(Bytewise, models.CharField):
    pass


def hash_key(key):
    """The unique, fixed-size name of a key (``key_hash``)."""
    return sha256_hex(key)


class ItemManager(BatchRows, models.Manager):
    def by_key(self, key, for_update=False):
        """The item at ``key``, or None; ``for_update`` locks its row (PostgreSQL).

        This is the lookup on every GET and write, so it skips the ORM's query
        compilation (most of a cached image's time otherwise): one statement
        on the unique ``key_hash`` index, rows built with from_db.
        """
        fields = self.model._meta.concrete_fields
        db = router.db_for_write(self.model) if for_update else router.db_for_read(self.model)
        row = self._select_by_key(db, "_by_key_sql", [field.column for field in fields], key, for_update)
        if row is None:
            return None
        values = [
            converter(value)
            for converter, value in zip(self._converters(db), row)
        ]
        return self.model.from_db(db, [field.attname for field in fields], values)

    def version(self, key):
        """``(id, updated, content_name)`` of the item at ``key`` as the database
        returns them, or None: what changes on every write of the item, read
        without building it (``objects.replay`` checks it on every replay)."""
        db = router.db_for_read(self.model)
        return self._select_by_key(db, "_version_sql", ["id", "updated", "content_name"], key)

    def insert_new(self, item):
        """INSERT ``item`` unless an item with its key exists; True when it was
        inserted (and ``item.id`` is set).

        One statement, ``ON CONFLICT DO NOTHING RETURNING``: a concurrent
        creator of the same key makes it a no-op, where a plain INSERT would
        raise an IntegrityError that only a savepoint (two more round trips
        on PostgreSQL) could recover the transaction from. Written by
        ``insert_many`` rather than compiled by the ORM: on SQLite the write
        lock is held meanwhile, and the ORM's compilation was half of it.
        """
        return bool(self.insert_many([item], [json.dumps(item.metadata)]))

    def _select_by_key(self, db, name, columns, key, for_update=False):
        connection_ = connections[db]
        sql = self.__dict__.get(name)
        if sql is None:
            names = ", ".join(connection_.ops.quote_name(column) for column in columns)
            table = connection_.ops.quote_name(self.model._meta.db_table)
            sql = self.__dict__[name] = f"SELECT {names} FROM {table} WHERE key_hash = %s"
        if for_update and connection_.features.has_select_for_update:
            sql += " FOR UPDATE"
        row = _fetch_one(connection_, sql, [hash_key(key)])
        return None if row is None else tuple(row)

    def _converters(self, db):
        """Per-column functions turning database values into Python values."""
        cache = self.__dict__.setdefault("_converter_cache", {})
        if db not in cache:
            connection_ = connections[db]
            converters = []
            for field in self.model._meta.concrete_fields:
                backend = connection_.ops.get_db_converters(field.get_col(self.model._meta.db_table))
                own = field.get_db_converters(connection_)
                steps = backend + own
                converters.append(_chain(steps, field, connection_))
            cache[db] = converters
        return cache[db]


def _fetch_one(connection_, sql, params):
    """One row of ``sql``; on PostgreSQL as a prepared statement.

    Django's psycopg cursors bind parameters client-side, so PostgreSQL parses
    and plans every lookup anew; a server-side cursor with ``prepare=True``
    plans it once per connection, which is a third of a replayed answer's
    time (objects/replay.py). Errors still become Django's (``wrap_database_errors``).
    """
    if connection_.vendor == "postgresql":
        import psycopg

        connection_.ensure_connection()
        with connection_.wrap_database_errors, psycopg.Cursor(connection_.connection) as cursor:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchone()
    with connection_.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _chain(steps, field, connection_):
    expression = field.get_col(field.model._meta.db_table)

    def convert(value):
        for step in steps:
            value = step(value, expression, connection_)
        return value

    return convert


class Item(models.Model):
    objects = ItemManager()

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
    # What the S3 protocol (s3/) returns with the content: its MD5 ETag (see
    # content.StoredContent.md5; empty for content stored before it was
    # kept), the Content-Disposition, Cache-Control, ... headers and the
    # x-amz-checksum-* values given at upload.
    content_md5 = models.CharField(max_length=48, blank=True, default="", editable=False)
    content_headers = models.JSONField(default=dict, blank=True, editable=False)
    content_checksums = models.JSONField(default=dict, blank=True, editable=False)
    # The user who last wrote the item with credentials (a token, S3 keys);
    # an anonymous write keeps it. Not indexed: nothing looks items up by it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", editable=False, db_index=False)
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
        return render(self.__dict__)


# What render() reads: listings fetch just these columns, as dicts.
RENDERED_FIELDS = ("id", "key", "metadata", "created", "updated", "content_name", "content_size", "content_type",
                   "content_etag")


def render(values):
    """The API rendering (§2) of an item given as a mapping of RENDERED_FIELDS."""
    data = {"_id": values["id"], "_filepath": values["key"], "metadata": values["metadata"]}
    data["_created"] = values["created"].isoformat() if values["created"] else None
    data["_updated"] = values["updated"].isoformat() if values["updated"] else None
    if values["content_name"]:
        data["_content"] = {
            "size": values["content_size"],
            "type": values["content_type"],
            "etag": values["content_etag"],
        }
    return data
