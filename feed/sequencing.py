"""
Numbering changes so that a follower never skips one.

The problem. A follower asks for the changes with ``seq > since`` and
passes the highest ``seq`` it got as its next ``since``. If numbers were
taken when a write runs (an autoincrement, a sequence), two concurrent
writers could take 7 and 8 and commit 8 first: a follower reading then gets
8, moves ``since`` to 8, and never sees 7 when it commits a moment later.
PostgreSQL gives out sequence values at ``nextval`` and makes rows visible
at commit, in whatever order transactions end, and several hosts write at
once; so numbers taken before commit cannot be the feed's order.

The design: number after commit. A write's transaction inserts its
``Change`` rows with no number (``seq`` NULL), at no cost to concurrency: no
lock beyond the item rows it already holds. Numbers are given by a
*sequencer*: one transaction that locks the single ``Sequencer`` row, gives
every committed, unnumbered change the next numbers (in insertion order),
moves ``last_seq`` on, and commits. The row lock makes sequencers run one at
a time, across processes and hosts, and a sequencer's numbers become visible
all at once at its commit, after every lower number (each sequencer starts
after the previous one committed and numbers above its ``last_seq``). So at
any moment the numbered changes a reader can see are exactly ``1 ..
last_seq``, with no gap that could fill in later: reading ``seq > since``
up to ``last_seq`` and passing ``last_seq`` on never skips and never repeats
a change. A change whose write commits while a sequencer runs is not seen by
it and gets a number from the next one, above everything seen before.

"Commit order" is then the order in which sequencers saw commits. Two writes
of one key are always in their real order (the second waits on the first's
row lock and inserts its change after the first committed), and so is any
write that began after another was acknowledged; only writes that were in
flight together can be numbered in either order, which no client can tell.

Who runs the sequencer: the readers. Every ``_changes`` request numbers
what is pending before it reads (and a long poll does so each time it looks
again), and so does pruning; writers pay one INSERT of their change rows and
nothing else. On PostgreSQL a reader that finds the sequencer busy skips it
and reads what is numbered (the busy one will have numbered its changes by
the next look). On SQLite every write transaction already runs alone (the
database's single writer), so the lock is that one.

Alternatives not taken: numbering inside the write's transaction under a
table or advisory lock held to commit serialises every write in the store,
WAL flush included (a few hundred writes a second on a disk that syncs in
4 ms); a "visibility horizon" (hand out only numbers below the oldest
transaction in flight, from ``pg_snapshot_xmin``) needs PostgreSQL-only
machinery and still a second mechanism on SQLite.
"""
from django.db import connection, transaction

from .models import Change, Sequencer

BATCH = 50_000  # changes numbered per statement; a sequencer loops until none are left


def pending():
    """True when some committed change has no number yet (one look at a small partial index)."""
    return Change.objects.filter(seq__isnull=True).exists()


def head():
    """The highest number given: every change numbered up to it is committed and visible."""
    return state().last_seq


def state(lock=False):
    """The Sequencer row, made on first use; with ``lock``, locked (PostgreSQL) or None when another
    transaction holds it."""
    rows = Sequencer.objects.select_for_update(skip_locked=True) if lock else Sequencer.objects
    found = rows.filter(pk=1).first()
    if found is None and not Sequencer.objects.filter(pk=1).exists():
        Sequencer.objects.get_or_create(pk=1)
        found = rows.filter(pk=1).first()
    return found


def sequence():
    """Number the committed changes that have no number; return the head.

    Skips (and returns the head as it is) when another sequencer holds the
    lock on PostgreSQL, or when nothing is pending.
    """
    if not pending():
        return head()
    with transaction.atomic():
        locked = state(lock=True)
        if locked is None:
            return head()
        numbered = 0
        while True:
            count = _number(locked.last_seq + numbered)
            numbered += count
            if count < BATCH:
                break
        if numbered:
            locked.last_seq += numbered
            locked.save(update_fields=["last_seq"])
        return locked.last_seq


def _number(after):
    """Give the next numbers after ``after`` to up to BATCH unnumbered changes, in insertion order."""
    table = connection.ops.quote_name(Change._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET seq = numbered.seq FROM ("
            f"  SELECT id, %s + ROW_NUMBER() OVER (ORDER BY id) AS seq FROM {table}"
            f"  WHERE seq IS NULL ORDER BY id LIMIT %s"
            f") AS numbered WHERE {table}.id = numbered.id",
            [after, BATCH],
        )
        return cursor.rowcount
