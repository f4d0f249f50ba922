"""
``manage.py cleanup_multipart [--older-than SECONDS] [--dry-run]``: delete
multipart uploads that were started long ago and never completed nor
aborted, with their parts, and part blobs that no upload names (a worker
killed between storing a part and recording it).

Part blobs live in the storage folder ``multipart``, which ``cleanup_content``
never touches, so an upload in progress is safe from it; this command is
their clean-up. Run it from cron like ``cleanup_content`` (docs/operations.md).
"""
from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.utils import timezone

from objects import content
from objects.management import Run, add_progress_argument, positive_int
from objects.management.commands.cleanup_content import walk
from s3.models import MultipartUpload, UploadPart

DAY = 24 * 3600
ORPHAN_AGE = timedelta(hours=1)


class Command(BaseCommand):
    help = "Delete multipart uploads left unfinished, with their parts, and part blobs no upload names."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=positive_int, default=7 * DAY, metavar="SECONDS",
                            help="Delete uploads started at least this long ago (default 604800, 7 days).")
        parser.add_argument("--dry-run", action="store_true", help="Report what would go, delete nothing.")
        add_progress_argument(parser)

    def handle(self, *args, **options):
        cutoff = timezone.now() - timedelta(seconds=options["older_than"])
        run = Run(self, options, unit="upload", desc="uploads", outcomes=("uploads deleted", "orphan parts deleted"))
        try:
            for upload in MultipartUpload.objects.filter(created__lt=cutoff).iterator():
                run.advance()
                blobs = list(upload.parts.values_list("blob", flat=True))
                run.note(f"upload {upload.upload_id} of {upload.key!r}, started {upload.created:%Y-%m-%d %H:%M}, "
                         f"{len(blobs)} parts", level=2)
                if not options["dry_run"]:
                    upload.delete()
                    for name in blobs:
                        content.delete_content(name)
                run.count("uploads deleted")
            young = timezone.now() - ORPHAN_AGE
            for name in walk("multipart"):
                if UploadPart.objects.filter(blob=name).exists() or default_storage.get_modified_time(name) > young:
                    continue
                if not options["dry_run"]:
                    content.delete_content(name)
                run.count("orphan parts deleted")
        finally:
            run.close()
        if options["verbosity"]:
            self.stdout.write(("Would delete: " if options["dry_run"] else "Deleted: ") + run.summary() + ".")
