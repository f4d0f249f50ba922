"""
Many items' rows read and written in one statement each, for the batch write
path (``objects.writing.write_many``: ``_bulk``, ``_expand``, imports), and
a single write's INSERT and UPDATE (``objects.writing.write``), which on
SQLite run while every other writer waits.

This layer skips the ORM: its query compilation, ``Model.__init__`` and its
per-value preparation cost more than the database's own work at tens of
thousands of rows a second. What it skips, and so must do itself: the
statements are written here (quoting names through the connection), items
are built from column values (``built``: no defaults, no ``pre_init`` or
``post_init``, which nothing receives for Item; columns not read are
deferred and load when read), and values are prepared once per batch. On
PostgreSQL the rows travel as one JSON text (``rows_from_json``), because
psycopg splits long statements and quotes each value in Python.
"""
import json

from django.db import connections, models, router
from django.db.models.base import ModelState
from django.utils import timezone


class BatchRows:
    """Methods of ``objects.models.ItemManager`` (``Item.objects``) for batches of rows."""

    # What a batch write reads of an item it changes, and what the items_saved receivers read of it.
    WRITE_COLUMNS = ("id", "key_hash", "key", "key_prefix", "dir", "metadata", "owner_id", "content_name",
                     "content_type", "content_etag")

    def for_write(self, hashes, lock=True):
        """``{key_hash: (Item, metadata text)}`` of the items with these key hashes, their rows
        locked (PostgreSQL) unless ``lock`` is false.

        ``objects.writing.write_many`` reads thousands a second this way. The
        statement is written here and the items built by ``built``, not by
        the ORM, whose query compilation and ``Model.__init__`` cost more
        than the rows: only ``WRITE_COLUMNS`` are read, the others are
        deferred (reading one loads it, as after ``.only()``), the metadata
        too: it is given as the database's text, for the caller to parse
        only where it needs the value.
        """
        db = router.db_for_write(self.model)
        connection_ = connections[db]
        quote = connection_.ops.quote_name
        names = ", ".join(quote(column) for column in self.WRITE_COLUMNS)
        lock = " FOR UPDATE" if lock and connection_.features.has_select_for_update else ""
        found = {}
        with connection_.cursor() as cursor:
            for start in range(0, len(hashes), 1000):
                chunk = hashes[start : start + 1000]
                if connection_.vendor == "postgresql":  # one parameter (see rows_from_json)
                    where, params = f"{quote('key_hash')} = ANY(%s::varchar(64)[])", [chunk]
                else:
                    where, params = f"{quote('key_hash')} IN ({', '.join(['%s'] * len(chunk))})", chunk
                # Rows are locked in key_hash order, whatever the plan: two batches that share keys
                # wait for each other rather than deadlock.
                cursor.execute(f"SELECT {names} FROM {quote(self.model._meta.db_table)} WHERE {where} "
                               f"ORDER BY {quote('key_hash')}{lock}", params)
                for row in cursor.fetchall():
                    values = dict(zip(self.WRITE_COLUMNS, row))
                    text = values.pop("metadata")  # jsonb comes as text too (Django's loader)
                    found[values["key_hash"]] = (self.built(values, db), text)
        return found

    def built(self, values, db=None):
        """An Item holding ``values`` (attribute names to Python values), as a row of ``db`` when given.

        What ``Model.__init__`` does, without its per-field defaults and
        ``pre_init``/``post_init`` signals (no receiver for Item); fields not
        in ``values`` are deferred. Used by the batch write path only.
        """
        item = self.model.__new__(self.model)
        item.__dict__.update(values)
        item._state = ModelState()
        if db is not None:
            item._state.adding, item._state.db = False, db
        return item

    def insert_many(self, items, metadata_texts):
        """INSERT the ``items`` whose keys no item has, 500 rows a statement;
        the set of key hashes inserted (those items get their ``id``).
        ``metadata_texts`` holds each item's metadata as ``json_parameter`` text.

        ``insert_new`` for many: a key a concurrent writer created is skipped,
        not an error. The statement is written here rather than compiled by the
        ORM, which spends more time preparing each value than the database
        spends storing it (``_bulk`` inserts tens of thousands a second).
        """
        # In key_hash order, as for_write locks: two batches inserting the same new keys wait for
        # each other rather than deadlock.
        pairs = sorted(zip(items, metadata_texts), key=lambda pair: pair[0].key_hash)
        items, metadata_texts = [item for item, _ in pairs], [text for _, text in pairs]
        if not items:
            return set()
        db = router.db_for_write(self.model)
        connection_ = connections[db]
        now = timezone.now()
        by_hash = {item.key_hash: item for item in items}
        if connection_.vendor == "postgresql":
            return self._insert_columns(items, metadata_texts, now, db, by_hash)
        columns, (head, row, tail) = self._columns(db), self._insert_statement(db)
        stamp = self.model._meta.get_field("created").get_db_prep_save(now, connection_)
        inserted = set()
        with connection_.cursor() as cursor:
            for start in range(0, len(items), 500):
                chunk = items[start : start + 500]
                params = []
                for item, text in zip(chunk, metadata_texts[start : start + 500]):
                    item.created = item.updated = now
                    params += [text if attname == "metadata" else stamp if is_time else prepare(getattr(item, attname))
                               for attname, _, is_time, prepare in columns]
                cursor.execute(head + ", ".join([row] * len(chunk)) + tail, params)
                inserted |= _saved(cursor.fetchall(), by_hash, db)
        return inserted

    def _columns(self, db):
        """``(attname, column, is_time, prepare)`` of every column but the id, for the statements
        of this module on ``db``, worked out once per manager: ``prepare`` makes a field's query
        parameter of a value."""
        cache = self.__dict__.setdefault("_columns_by_db", {})
        if db not in cache:
            cache[db] = [(f.attname, f.column, isinstance(f, models.DateTimeField), _preparer(f, connections[db]))
                         for f in self.model._meta.concrete_fields if not f.primary_key]
        return cache[db]

    def _insert_statement(self, db):
        """``(head, row, tail)`` of insert_many's statement on SQLite, written once per manager."""
        cache = self.__dict__.setdefault("_insert_statements", {})
        if db not in cache:
            quote = connections[db].ops.quote_name
            columns = self._columns(db)
            head = (f"INSERT INTO {quote(self.model._meta.db_table)} "
                    f"({', '.join(quote(column) for _, column, _, _ in columns)}) VALUES ")
            row = "(" + ", ".join(["%s"] * len(columns)) + ")"
            tail = f" ON CONFLICT DO NOTHING RETURNING {quote('id')}, {quote('key_hash')}"
            cache[db] = head, row, tail
        return cache[db]

    def _insert_columns(self, items, metadata_texts, now, db, by_hash):
        """insert_many on PostgreSQL: the rows as one JSON array, ``INSERT ... SELECT ... FROM
        jsonb_array_elements(%s)`` (``rows_from_json``)."""
        connection_ = connections[db]
        quote = connection_.ops.quote_name
        # The metadata last, its text spliced in as it is; every other value through one json.dumps a row.
        fields = [field for field in self.model._meta.concrete_fields if not field.primary_key and field.attname != "metadata"]
        fields.append(self.model._meta.get_field("metadata"))
        statement = (f"INSERT INTO {quote(self.model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
                     f"{rows_from_json(connection_, fields)} "
                     f"ON CONFLICT DO NOTHING RETURNING {quote('id')}, {quote('key_hash')}")
        stamp = now.isoformat()
        names = [(field.attname, isinstance(field, models.DateTimeField)) for field in fields[:-1]]
        rows = []
        for item, text in zip(items, metadata_texts):
            item.created = item.updated = now
            rows.append(json.dumps([stamp if is_time else getattr(item, name) for name, is_time in names])[:-1]
                        + "," + text + "]")
        with connection_.cursor() as cursor:
            cursor.execute(statement, ["[" + ",".join(rows) + "]"])
            return _saved(cursor.fetchall(), by_hash, db)

    def save_row(self, item):
        """UPDATE every column of the saved ``item``, ``updated`` stamped now: ``item.save()``
        without its query compilation, which was a third of a merge's time under SQLite's
        write lock. No ``pre_save``/``post_save`` is sent (nothing receives them for Item)."""
        db = router.db_for_write(self.model)
        columns = self._columns(db)
        cache = self.__dict__.setdefault("_update_statements", {})
        if db not in cache:
            quote = connections[db].ops.quote_name
            cache[db] = (f"UPDATE {quote(self.model._meta.db_table)} SET "
                         f"{', '.join(quote(column) + ' = %s' for _, column, _, _ in columns)} WHERE {quote('id')} = %s")
        item.updated = timezone.now()
        with connections[db].cursor() as cursor:
            cursor.execute(cache[db], [prepare(getattr(item, attname)) for attname, _, _, prepare in columns] + [item.pk])

    def update_many(self, items, metadata_texts, owner=None, updated=None):
        """UPDATE the metadata (``metadata_texts``: each item's as ``json_parameter`` text), ``updated``
        and, given an ``owner``, the owner of ``items`` (saved rows): one statement executed many
        times (pipelined by psycopg). ``bulk_update`` builds a CASE expression per column and row,
        several times slower."""
        items = list(items)
        if not items:
            return
        db = router.db_for_write(self.model)
        connection_ = connections[db]
        quote = connection_.ops.quote_name
        when = self.model._meta.get_field("updated").get_db_prep_save(updated or timezone.now(), connection_)
        columns = ["metadata", "updated"] + (["owner_id"] if owner is not None else [])
        statement = (f"UPDATE {quote(self.model._meta.db_table)} SET "
                     f"{', '.join(quote(column) + ' = %s' for column in columns)} WHERE {quote('id')} = %s")
        tail = [when] + ([owner.pk] if owner is not None else [])
        if connection_.vendor == "postgresql":  # one statement, the rows as one JSON array (rows_from_json)
            table = quote(self.model._meta.db_table)
            fields = [self.model._meta.get_field("id"), self.model._meta.get_field("metadata")]
            with connection_.cursor() as cursor:
                cursor.execute(f"UPDATE {table} SET {quote('metadata')} = new.metadata, "
                               f"{', '.join(quote(column) + ' = %s' for column in columns[1:])} "
                               f"FROM ({rows_from_json(connection_, fields)}) AS new(id, metadata) "
                               f"WHERE {table}.{quote('id')} = new.id",
                               [*tail, "[" + ",".join(f"[{item.pk},{text}]" for item, text in
                                                      zip(items, metadata_texts)) + "]"])
            return
        with connection_.cursor() as cursor:
            cursor.executemany(statement, [[json_parameter(connection_, text), *tail, item.pk]
                                           for item, text in zip(items, metadata_texts)])


def _preparer(field, connection_):
    """The function that turns a value of ``field`` into a query parameter: text as it is, an
    empty JSON object prepared once."""
    if isinstance(field, (models.CharField, models.TextField)):
        return lambda value: value
    if isinstance(field, models.JSONField):
        empty = field.get_db_prep_save({}, connection_)
        return lambda value: empty if value == {} else field.get_db_prep_save(value, connection_)
    return lambda value: field.get_db_prep_save(value, connection_)


def rows_from_json(connection_, fields):
    """``SELECT`` of the rows of ``fields`` (columns, in order) from one parameter on PostgreSQL:
    a JSON array of rows, each an array of the values (JSON columns as JSON, the others as text).

    psycopg finds the placeholders of a statement in Python and caches that
    only for statements under 4 KB, and quotes each value, or each element
    of an array, in Python: a VALUES list of 500 rows costs more there than
    the database spends storing it. One JSON text, made by ``json.dumps``
    and parsed by the server, skips both. It is parsed as ``jsonb``, once:
    each ``->`` of a ``json`` row parses its text again (10,000 rows of 11
    columns: 57 ms against 140 ms here).
    """
    values = []
    for index, field in enumerate(fields):
        if isinstance(field, models.JSONField):
            values.append(f"(row -> {index})")
        else:
            values.append(f"(row ->> {index})::{field.db_type(connection_)}")
    return f"SELECT {', '.join(values)} FROM jsonb_array_elements(%s::jsonb) AS row"


def json_parameter(connection_, text):
    """The query parameter that stores the JSON ``text`` in a JSONField column
    (jsonb on PostgreSQL, text elsewhere): the text a JSONField would have
    made of the value (``json.dumps`` with its defaults), not made again."""
    if connection_.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        return Jsonb(text, dumps=str)
    return text


def _saved(returned, by_hash, db):
    """Mark the items of ``by_hash`` (key hash -> item) whose ``(id, key_hash)`` rows came back from
    an INSERT as saved in ``db``; their key hashes."""
    for pk, key_hash in returned:
        item = by_hash[key_hash]
        item.pk = pk
        item._state.adding, item._state.db = False, db
    return {key_hash for _, key_hash in returned}
