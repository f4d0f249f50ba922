"""``manage.py prune_changes``: delete the change feed's entries older than ISTORE_CHANGES_RETENTION now."""
from django.core.management.base import BaseCommand

from feed import pruning


class Command(BaseCommand):
    help = "Delete the change feed's entries older than ISTORE_CHANGES_RETENTION (istore also does it by itself)."

    def handle(self, *args, **options):
        deleted = pruning.prune()
        self.stdout.write(f"Deleted {deleted} changes.")
