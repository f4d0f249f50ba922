"""
``manage.py cleanup_content``: delete blobs that no item references.

A worker killed mid-upload, or a crash between storing a blob and committing
the item, leaves a blob in storage that no row names. Such orphans are never
served (content is always reached through an item), so this only reclaims
space. Blobs younger than ``--older-than`` seconds are kept: they may belong to
an upload whose transaction is still open.
"""
from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.utils import timezone

from objects.models import Item

from .. import Run, add_progress_argument, positive_int

ROOT = "content"


def walk(directory):
    """Every file name under ``directory`` in the default storage."""
    try:
        folders, files = default_storage.listdir(directory)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{directory}/{name}"
    for folder in folders:
        yield from walk(f"{directory}/{folder}")


class Command(BaseCommand):
    help = "Delete uploaded-content blobs that no item references (left by interrupted uploads)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=positive_int, default=3600, metavar="SECONDS",
                            help="Only delete orphans at least this old (default 3600).")
        parser.add_argument("--dry-run", action="store_true", help="List orphans, delete nothing.")
        add_progress_argument(parser)

    def handle(self, *args, **options):
        cutoff = timezone.now() - timedelta(seconds=options["older_than"])
        run = Run(self, options, unit="blob", desc="blobs", outcomes=("kept", "deleted", "young"))
        try:
            for name in walk(ROOT):
                run.advance()
                if Item.objects.filter(content_name=name).exists():
                    run.count("kept")
                elif default_storage.get_modified_time(name) > cutoff:
                    run.count("young")
                else:
                    if not options["dry_run"]:
                        default_storage.delete(name)
                    run.note(f"orphan: {name}", level=1 if options["dry_run"] else 2)
                    run.count("deleted")
        finally:
            run.close()
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(f"{run.summary()} ({verb} orphans older than {options['older_than']} s)")
