"""
Keeping the change log to ``ISTORE_CHANGES_RETENTION`` seconds.

Pruning runs by itself: each process prunes at most once every
``PRUNE_EVERY`` seconds, after a write commits or when a follower reads
the feed, so a store that is written or followed keeps its log bounded with
no cron job (``manage.py prune_changes`` does the same by hand). Changes are
numbered before any is pruned, and ``Sequencer.pruned_through`` records the
highest number deleted: a follower whose ``since`` is below it may have
missed changes, and is told so (410 ``changes_expired``) instead.
"""
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from . import sequencing
from .models import Change, Sequencer

PRUNE_EVERY = 60.0  # seconds between two prunings by one process
BATCH = 10_000  # changes deleted per statement
_last_pruned = [float("-inf")]  # time.monotonic() of this process's last pruning


def prune_if_due():
    """Prune when this process has not pruned for ``PRUNE_EVERY`` seconds."""
    if time.monotonic() - _last_pruned[0] >= PRUNE_EVERY:
        prune()


def prune():
    """Delete the changes older than the retention; return how many were deleted."""
    _last_pruned[0] = time.monotonic()
    sequencing.sequence()  # every change to delete has its number, so pruned_through covers it
    cutoff = timezone.now() - timedelta(seconds=settings.ISTORE_CHANGES_RETENTION)
    deleted = 0
    while True:
        with transaction.atomic():
            locked = Sequencer.objects.select_for_update().get(pk=1)  # sequence() made it
            ids = list(Change.objects.filter(created__lt=cutoff, seq__isnull=False)
                       .order_by("created").values_list("id", flat=True)[:BATCH])
            if not ids:
                return deleted
            doomed = Change.objects.filter(id__in=ids)
            highest = doomed.aggregate(highest=Max("seq"))["highest"]
            deleted += doomed._raw_delete(doomed.db)
            if highest > locked.pruned_through:
                locked.pruned_through = highest
                locked.save(update_fields=["pruned_through"])
