"""
The change log behind ``GET {dir}/_changes``: one ``Change`` row per key
written or deleted, and the ``Sequencer`` row that numbers them.

A change is inserted by the write's own transaction (``feed.receivers``) with
no number; it gets its ``seq`` later, once committed, from
``feed.sequencing`` (read its docstring for why numbers are not taken at
insert time).
"""
from django.db import models
from django.db.models.functions import Now

from objects.models import BytewiseTextField


class Change(models.Model):
    CREATE, UPDATE, DELETE = "create", "update", "delete"

    id = models.BigAutoField(primary_key=True)  # insertion order, not the feed's order
    seq = models.BigIntegerField(null=True, unique=True)  # the feed's order; None until numbered
    key = BytewiseTextField()
    op = models.CharField(max_length=6, choices=[(op, op) for op in (CREATE, UPDATE, DELETE)])
    item_id = models.BigIntegerField()
    # The database's clock, not a host's: retention is measured on one clock.
    created = models.DateTimeField(db_default=Now(), db_index=True)

    class Meta:
        indexes = [models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="change_unnumbered")]

    def __str__(self):
        return f"{self.seq} {self.op} {self.key}"


class Sequencer(models.Model):
    """The one row (pk 1) whose lock numbers changes one sequencer at a time."""

    last_seq = models.BigIntegerField(default=0)  # the highest number given
    pruned_through = models.BigIntegerField(default=0)  # changes up to this number may have been deleted
