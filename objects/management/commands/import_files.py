"""
``manage.py import_files ROOT --prefix /dir/ [--metadata '{"k": "v"}']``:
upload a tree of files as keys.

Every regular file under ROOT becomes the key ``prefix + relative path``
(``/`` separators whatever the platform), its bytes uploaded exactly as
``curl -T`` would: streamed by ``objects.content.store_stream`` into the
configured storage (type sniffed from the bytes, then the extension), and
registered through ``objects.writing.write``, so every rule of the API
(key validation, size limits, merge of ``--metadata``, signals, the old blob
deleted only after commit) holds for imports too.

Resumable: a file whose key already holds content of the same size and
SHA-256 is skipped (its metadata is still merged when ``--metadata`` would
change it), so an interrupted import is simply run again.

Symbolic links are followed only while they stay inside ROOT; one that leads
out of it is skipped with a message (an import must not read what its
operator did not point it at), and a link back to an ancestor directory is
not walked twice.
"""
import hashlib
import os

from django.core.management.base import BaseCommand, CommandError

from objects.errors import ApiError
from objects import content as content_store
from objects import keys, writing
from objects.management import (
    CHUNK, Run, add_progress_argument, check_addressable, directory_prefix, metadata_option,
)
from objects.models import Item, hash_key


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inside(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def sort_key(entry):
    """Bytewise order of the keys: a directory sorts as its name plus '/' (so "a.txt" < "a/b")."""
    try:
        slash = b"/" if entry.is_dir() else b""
    except OSError:
        slash = b""
    return entry.name.encode("utf-8", "surrogateescape") + slash


class Command(BaseCommand):
    help = ("Upload every file under ROOT as the key PREFIX + relative path. "
            "Re-running skips files already there.")

    def add_arguments(self, parser):
        parser.add_argument("root", help="The directory to import.")
        parser.add_argument("--prefix", required=True,
                            help="The directory the files go under, e.g. /photos/2024/.")
        parser.add_argument("--metadata", help='A JSON object merged into every imported item\'s metadata.')
        add_progress_argument(parser)

    def handle(self, root, prefix=None, metadata=None, **options):
        prefix = directory_prefix(prefix)
        metadata = metadata_option(metadata)
        if not os.path.isdir(root):
            what = "does not exist" if not os.path.exists(root) else "is not a directory"
            raise CommandError(f"ROOT {root} {what}; pass the directory whose files to import.")
        self.root = os.path.realpath(root)
        # A first pass counts files and bytes so the bar can show what remains.
        total = sum(size for _, _, size in self.walk(report=False))
        self.run = Run(self, options, total=total, unit="B", unit_scale=True, desc="import",
                       outcomes=("created", "updated", "skipped", "failed"))
        try:
            for relative, path, size in self.walk(report=True):
                outcome = self.import_file(prefix + relative, path, size, metadata)
                self.run.count(outcome)
                self.run.advance(size)
        finally:
            self.run.close()
        if options.get("verbosity", 1):
            self.stdout.write(f"Imported {root} into {prefix}: {self.run.summary()}.")
        if self.run.counts["failed"]:
            raise CommandError(f"{self.run.counts['failed']} files failed; see the messages above. "
                               "Run the same command again once fixed: files already imported are skipped.")

    def walk(self, report):
        """Yield ``(relative key path, path, size)`` for every file to import, in key order."""
        yield from self._walk(self.root, "", frozenset([self.root]), report)

    def _walk(self, directory, relative, ancestors, report):
        try:
            entries = sorted(os.scandir(directory), key=sort_key)
        except OSError as exc:
            if report:
                self.failed(relative or "./", f"cannot list it: {exc.strerror or exc}")
            return
        for entry in entries:
            name = relative + entry.name
            try:
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if not inside(real, self.root):
                        if report:
                            self.run.problem(f"skipped {name!r}: a symbolic link out of ROOT (to {real!r})")
                            self.run.count("skipped")
                        continue
                if entry.is_dir():
                    real = os.path.realpath(entry.path)
                    if real in ancestors:
                        continue  # a link back up the tree: walking it would never end
                    yield from self._walk(entry.path, name + "/", ancestors | {real}, report)
                elif entry.is_file():
                    yield name, entry.path, entry.stat().st_size
                # Sockets, FIFOs, devices and dangling links hold no file to upload.
            except OSError as exc:
                if report:
                    self.failed(name, exc.strerror or str(exc))

    def failed(self, name, why):
        self.run.problem(f"failed {name!r}: {why}")
        self.run.count("failed")

    def import_file(self, key, path, size, metadata):
        """Upload one file; return its outcome: created, updated, skipped or failed."""
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            # os.scandir hands undecodable bytes over as surrogates.
            self.run.problem(f"failed {key!r}: the file name is not valid UTF-8, and a key must be")
            return "failed"
        try:
            keys.validate_key(key)
            check_addressable(key)
            existing = Item.objects.filter(key_hash=hash_key(key)).first()
            # Hash only when the size matches: a new or resized file is read once, by the upload.
            same = existing is not None and existing.content_size == size
            if same and existing.content_etag == file_sha256(path):
                if metadata is None or writing.merge_patch(existing.metadata, metadata) == existing.metadata:
                    self.run.note(f"skipped {key!r}: already imported")
                    return "skipped"
                writing.write(key, metadata)  # same bytes, new metadata: no upload
                return "updated"
            with open(path, "rb") as handle:
                stored = content_store.store_stream(handle.read, key, "", expected_length=size)
            # write() deletes the stored blob itself when it fails.
            _, created = writing.write(key, metadata, stored=stored)
        except ApiError as exc:
            detail = exc.detail
            if exc.code == "incomplete_upload":
                detail = "the file changed size while it was read; run the import again"
            self.run.problem(f"failed {key!r}: {detail}")
            return "failed"
        except OSError as exc:
            self.run.problem(f"failed {key!r}: {exc.strerror or exc}")
            return "failed"
        except Exception as exc:  # noqa: BLE001 - e.g. an S3 client error: this file fails, the next may not
            self.run.problem(f"failed {key!r}: {exc.__class__.__name__}: {exc}")
            return "failed"
        self.run.note(f"{'created' if created else 'updated'} {key!r}")
        return "created" if created else "updated"
