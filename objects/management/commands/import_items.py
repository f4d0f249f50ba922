"""
``manage.py import_items IN.jsonl``: restore what ``export_items`` wrote.

Each line restores one item exactly: the same ``_id``, key, metadata,
content (bytes, type and SHA-256 ETag) and ``_created`` / ``_updated`` times
when the line carries them. A line whose key already exists with the same
``_id`` updates that item; a key registered under another ``_id``, or an
``_id`` that belongs to another key, is a conflict: reported, counted, and
nothing of that line is written. Any other bad line is reported the same way;
the run goes on and exits non-zero at the end when a line failed.

Lines are applied in batches, one transaction per batch; a line is checked
before anything of it is written, and when the database refuses a batch
anyway (a concurrent writer took a key), the batch is retried line by line so
only the offending line fails. Blobs go to storage before the transaction
opens (a slow upload never holds the database's write lock) and are deleted
again when their line fails; a blob already in place with the same size and
SHA-256 is kept, so re-running an import is cheap.

Ids: rows are created with explicit ids, so the id counter must end up above
them or the next POST would collide. SQLite's AUTOINCREMENT counter follows
explicit ids by itself (and never goes down); on PostgreSQL the identity
sequence is raised before each batch (and never lowered: ids are never
reused, not even those of items deleted before the import).
"""
import base64
import binascii
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from objects.errors import ApiError
from objects import content as content_store
from objects import keys, signals, sources
from objects.management import (
    DATA_MARK, Base64Stream, LineError, Lines, MiB, Run, add_progress_argument, check_addressable, open_input,
    positive_int,
)
from objects.models import Item, hash_key
from objects.writing import check_metadata

# Lines up to this size are parsed whole; longer ones (content past ~12 MiB)
# are streamed: the head is parsed, the base64 decoded into storage in chunks.
LINE_LIMIT = 16 * MiB
# The most of one line held in memory while looking for its "_data" field.
HEAD_LIMIT = 64 * MiB
CONTENT_FIELDS = [
    "metadata", "content_name", "content_size", "content_type", "content_etag", "created", "updated",
]


@dataclass
class Record:
    line: int
    id: int
    key: str
    metadata: dict
    content: dict | None  # {"size", "type", "etag"} from the line
    created: datetime | None
    updated: datetime | None
    stored: object = None  # StoredContent put in storage for this line
    keep_content: bool = False  # the item already holds these exact bytes

    @property
    def key_hash(self):
        return hash_key(self.key)


def loads(line):
    """Decode one line as UTF-8 JSON (json.loads would guess UTF-16 from some bytes)."""
    try:
        return json.loads(line.decode("utf-8").lstrip("\ufeff"))
    except UnicodeDecodeError:
        raise LineError("the line is not valid UTF-8") from None
    except ValueError as exc:
        raise LineError(f"not valid JSON ({exc})") from None


def parse_time(value, field):
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise LineError(
            f"{field} must be an ISO 8601 date-time such as 2026-01-31T12:00:00+00:00, not {value!r}"
        ) from None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt_timezone.utc)


def parse_record(number, data):
    """Check one decoded line (without ``_data``) and return its Record."""
    if not isinstance(data, dict):
        raise LineError(f"a line must be a JSON object, not {type(data).__name__}")
    item_id = data.get("_id")
    if isinstance(item_id, bool) or not isinstance(item_id, int) or item_id < 1:
        raise LineError(f"_id must be a positive integer, not {item_id!r}")
    key = data.get("_filepath")
    if not isinstance(key, str):
        raise LineError(f"_filepath must be the key as a string, not {key!r}")
    unknown = [name for name in data if not name.startswith("_") and name != "metadata"]
    if unknown:
        raise LineError(f"unknown fields {unknown}; a line holds _id, _filepath, metadata and _-fields only")
    try:
        keys.validate_key(key)
        sources.check_scheme(key)
        check_addressable(key)
        metadata = check_metadata(data.get("metadata", {}))
    except ApiError as exc:
        raise LineError(exc.detail) from None
    content = data.get("_content")
    if content is not None:
        if not (isinstance(content, dict) and isinstance(content.get("size"), int)
                and isinstance(content.get("etag"), str) and isinstance(content.get("type", ""), str)):
            raise LineError("_content must be {\"size\": int, \"type\": str, \"etag\": str}")
        if keys.parse_key(key).source is not None or keys.is_directory(key):
            raise LineError("only a plain key (no source URL, not a directory) can hold uploaded content")
    elif "_data" in data:
        raise LineError("_data without _content: the size, type and etag of the content are missing")
    return Record(number, item_id, key, metadata, content,
                  parse_time(data.get("_created"), "_created"), parse_time(data.get("_updated"), "_updated"))


class Command(BaseCommand):
    help = ("Restore items from JSON Lines written by export_items: "
            "same _ids, keys, metadata, content and times.")

    def add_arguments(self, parser):
        parser.add_argument("input", help="The JSON Lines file to read, or - for stdin.")
        parser.add_argument("--batch-size", type=positive_int, default=500,
                            help="Lines per database transaction (default 500).")
        add_progress_argument(parser)

    def handle(self, input, batch_size=500, **options):
        stream, size = open_input(input)
        self.run = Run(self, options, total=size, unit="B", unit_scale=True, desc="import",
                       outcomes=("created", "updated", "failed"))
        self.kept = 0
        try:
            batch, batch_bytes = [], 0
            for record, length in self.records(Lines(stream)):
                self.run.advance(length)
                if record is None:
                    continue
                batch.append(record)
                batch_bytes += length
                # Bound the metadata held in memory, not only the line count.
                if len(batch) >= batch_size or batch_bytes >= 64 * MiB:
                    self.apply(batch)
                    batch, batch_bytes = [], 0
            if batch:
                self.apply(batch)
        finally:
            self.run.close()
            if input != "-":
                stream.close()
        if options.get("verbosity", 1):
            self.stdout.write(f"Imported from {input}: {self.run.summary()}; "
                              f"{self.kept} blobs already in place were kept.")
        if self.run.counts["failed"]:
            raise CommandError(f"{self.run.counts['failed']} lines failed; see the messages above. "
                               "Fix them and run the import again: lines already imported are kept.")

    def fail(self, number, message, record=None):
        self.run.problem(f"line {number}: {message}")
        self.run.count("failed")
        if record is not None and record.stored is not None:
            content_store.delete_content(record.stored.name)
            record.stored = None

    # --- Reading ---------------------------------------------------------

    def records(self, lines):
        """Yield ``(Record or None, bytes read)`` per line, its content already in storage."""
        number = 0
        while True:
            before = lines.consumed
            head = lines.readline(LINE_LIMIT)
            if not head:
                return
            number += 1
            record = None
            if head.strip():
                try:
                    if lines.at_start:
                        record = self.small_line(number, head)
                    else:
                        record = self.long_line(number, head, lines)
                except (LineError, ApiError) as exc:
                    self.fail(number, getattr(exc, "detail", None) or str(exc))
                    lines.skip_rest()
                except Exception as exc:  # noqa: BLE001 - storage errors (OSError, S3 client errors)
                    # The storage failed for this blob; the next line may fare better.
                    self.fail(number, f"storing its content failed ({exc.__class__.__name__}: {exc})")
                    lines.skip_rest()
            yield record, lines.consumed - before

    def small_line(self, number, line):
        data = loads(line)
        record = parse_record(number, data)
        if record.content is not None and not self.already_stored(record):
            encoded = data.get("_data")
            if not isinstance(encoded, str):
                raise LineError("_content without _data: the bytes are not in the line")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise LineError("_data is not valid base64") from None
            self.store(record, io.BytesIO(raw).read)
        return record

    def long_line(self, number, head, lines):
        """Parse the head of an over-long line and stream its ``_data`` into storage."""
        start = 0
        while True:
            # The top-level "_data" is the first mark whose prefix closes as an
            # object: a mark inside a string would have escaped quotes, one in
            # a nested object leaves braces open.
            at = head.find(DATA_MARK, start)
            if at >= 0:
                try:
                    data = loads(head[:at] + b"}")
                except LineError:
                    data = None
                if isinstance(data, dict):
                    break
                start = at + 1
                continue
            if lines.at_start:
                return self.small_line(number, head)  # no content after all: huge metadata, held whole
            if len(head) >= HEAD_LIMIT:
                raise LineError(f"the line is longer than {HEAD_LIMIT} bytes and is not in export_items' "
                                "layout (content as the last field _data)")
            start = max(0, len(head) - len(DATA_MARK))
            head += lines.readline(LINE_LIMIT)
        record = parse_record(number, data)
        if record.content is None:
            raise LineError("_data without _content: the size, type and etag of the content are missing")
        reader = Base64Stream(lines, head[at + len(DATA_MARK):])
        if not self.already_stored(record):
            self.store(record, reader.read)
        try:
            reader.finish()
        except LineError:
            if record.stored is not None:
                content_store.delete_content(record.stored.name)
            raise
        return record

    def already_stored(self, record):
        """True when the item already holds exactly these bytes (a re-run): no upload needed."""
        found = Item.objects.filter(key_hash=record.key_hash, id=record.id).values(
            "content_size", "content_etag").first()
        record.keep_content = bool(found) and (found["content_size"], found["content_etag"]) == (
            record.content["size"], record.content["etag"])
        return record.keep_content

    def store(self, record, read):
        """Put the line's bytes into storage exactly as they were exported."""
        stored = content_store.store_stream(read, record.key, record.content.get("type", ""),
                                            expected_length=record.content["size"])
        if stored.etag != record.content["etag"]:
            content_store.delete_content(stored.name)
            raise LineError(f"the content's SHA-256 is {stored.etag}, the line says "
                            f"{record.content['etag']}: the backup is damaged")
        # store_stream sniffs a missing or generic type; a restore keeps the recorded one.
        stored.content_type = record.content.get("type", "")
        record.stored = stored

    # --- Writing ---------------------------------------------------------

    def apply(self, batch):
        """Write a batch in one transaction, or line by line when the database refuses it."""
        try:
            outcomes = self.write_batch(batch)
        except DatabaseError as exc:
            if connection.needs_rollback:
                # Inside a caller's broken transaction nothing more can be written.
                self.drop_blobs(batch)
                raise
            if len(batch) == 1:
                refused = f"the database refused it ({exc.__class__.__name__}: {exc})"
                self.fail(batch[0].line, refused, batch[0])
                return
            for record in batch:
                self.apply([record])
            return
        except BaseException:
            self.drop_blobs(batch)
            raise
        for record, outcome in outcomes:
            if isinstance(outcome, LineError):
                self.fail(record.line, str(outcome), record)
            else:
                self.run.count(outcome)
                self.kept += record.keep_content

    @staticmethod
    def drop_blobs(batch):
        for record in batch:
            if record.stored is not None:
                content_store.delete_content(record.stored.name)

    def write_batch(self, batch):
        outcomes, saved, new, forget = [], {}, {}, []
        now = timezone.now()
        with transaction.atomic():
            raise_id_sequence(max(record.id for record in batch))
            by_hash = {item.key_hash: item for item in Item.objects.select_for_update().filter(
                key_hash__in={record.key_hash for record in batch})}
            by_id = {item.id: item for item in Item.objects.select_for_update().filter(
                id__in={record.id for record in batch})}
            for record in batch:
                try:
                    item, created = self.place(record, by_hash, by_id, forget, now)
                except LineError as exc:
                    outcomes.append((record, exc))
                    continue
                saved[item.id] = item
                if created:
                    new[item.id] = item
                outcomes.append((record, "created" if created else "updated"))
            times = {item.id: (item.created, item.updated) for item in saved.values()}
            # bulk_create stamps auto_now(_add) fields; the recorded times are put back below.
            Item.objects.bulk_create(list(new.values()))
            for item in saved.values():
                item.created, item.updated = times[item.id]
            Item.objects.bulk_update(list(saved.values()), CONTENT_FIELDS)
            signals.items_saved.send(sender=Item, items=list(saved.values()), created_ids=set(new))
            for name in forget:
                transaction.on_commit(lambda name=name: forget_content(name))
        return outcomes

    @staticmethod
    def place(record, by_hash, by_id, forget, now):
        """Apply one record to its (possibly new) Item in memory; check everything first."""
        item = by_hash.get(record.key_hash)
        if item is not None and item.id != record.id:
            raise LineError(f"the key {record.key!r} is registered with _id {item.id}, the line says "
                            f"{record.id}; delete one of them or fix the line")
        if item is None and record.id in by_id:
            raise LineError(f"_id {record.id} belongs to another key, {by_id[record.id].key!r}; "
                            "ids are never reused")
        if record.keep_content and (item is None or (item.content_size, item.content_etag) != (
                record.content["size"], record.content["etag"])):
            raise LineError("the item's content changed while importing; run the import again")
        created = item is None
        if created:
            item = Item(id=record.id, created=record.created or now)
            item.set_key(record.key)
            by_hash[record.key_hash] = by_id[record.id] = item
        elif record.created:
            item.created = record.created
        item.metadata = record.metadata
        item.updated = record.updated or now
        if not record.keep_content:
            if item.content_name:
                forget.append(item.content_name)
            stored = record.stored
            item.content_name = stored.name if stored else ""
            item.content_size = stored.size if stored else None
            item.content_type = stored.content_type if stored else ""
            item.content_etag = stored.etag if stored else ""
            item.content_md5 = stored.md5 if stored else ""
        return item, created


def forget_content(name):
    """Delete a replaced blob after commit, as objects.writing does."""
    content_store.delete_content(name)
    signals.content_forgotten.send(sender=Item, name=name)


def raise_id_sequence(at_least):
    """Make sure ids handed out after this are above ``at_least``; never lower the counter."""
    if connection.vendor != "postgresql":
        return  # SQLite AUTOINCREMENT (and MySQL AUTO_INCREMENT) follow explicit ids themselves.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Item._meta.db_table])
        (sequence,) = cursor.fetchone()
        # One statement, so a concurrent nextval() between reading and setting
        # the counter cannot make us move it backwards.
        cursor.execute(
            f"SELECT setval(%s::regclass, GREATEST(%s, (SELECT CASE WHEN is_called THEN last_value "
            f"ELSE last_value - 1 END FROM {sequence})), true)",
            [sequence, at_least],
        )
