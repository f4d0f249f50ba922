"""
``GET {dir}/_changes?since=SEQ&limit=N&wait=SECONDS``: the committed changes
under a directory after ``since``, oldest first.

The answer's ``last_seq`` is where the follower continues: the number of
the last change returned when ``limit`` cut the page, else the head of the
whole feed as this request saw it, even when nothing under ``dir`` changed
(so a follower of a quiet directory does not re-read the rest of the store's
changes on its next call). Changes are read in windows of ``WINDOW``
numbers along the ``seq`` index (numbers have no gaps, see
``feed.sequencing``), at most ``SCAN_LIMIT`` numbers a request: a directory
that changes rarely in a busy store costs a bounded scan per call, and the
follower catches up over a few calls.
"""
import time

from django.conf import settings

from objects import access, keyrange
from objects.errors import ApiError, BadRequest
from objects.responses import json_response
from objects.verbs import request_verb

from . import pruning, sequencing
from .models import Change

DEFAULT_LIMIT, MAX_LIMIT = 1000, 10_000
MAX_WAIT = 60
WINDOW = 10_000  # numbers read per query
SCAN_LIMIT = 200_000  # numbers read per request at most
POLL_INTERVAL = 0.05  # seconds between two looks of a long poll


class InvalidChanges(BadRequest):
    code = "invalid_changes"


class ChangesExpired(ApiError):
    status, code = 410, "changes_expired"


def parse_params(query):
    """``(since, limit, wait)`` from the query string; ``since`` is None for ``now``."""
    since = query.get("since", "0")
    since = None if since == "now" else _number(since, "since", int, 0, None, "a change number from last_seq, or now")
    limit = _number(query.get("limit", str(DEFAULT_LIMIT)), "limit", int, 1, MAX_LIMIT, f"1 to {MAX_LIMIT}")
    wait = _number(query.get("wait", "0"), "wait", float, 0, MAX_WAIT, f"0 to {MAX_WAIT} seconds")
    return since, limit, wait


def _number(text, name, kind, low, high, expected):
    try:
        value = kind(text)
    except ValueError:
        raise InvalidChanges(f"{name}={text!r} is not a number: {expected}.") from None
    if value != value or value < low or (high is not None and value > high):  # NaN included
        raise InvalidChanges(f"{name}={text!r} is out of range: {expected}.")
    return value


def changes(directory, since, limit, wait):
    """The answer for a follower of ``directory`` after ``since`` (None: now)."""
    pruning.prune_if_due()
    head = sequencing.sequence()
    if since is None:
        since = head
    pruned_through = sequencing.state().pruned_through
    if since < pruned_through:
        raise ChangesExpired(
            f"Changes up to {pruned_through} were deleted (kept {settings.ISTORE_CHANGES_RETENTION} s): "
            f"since={since} may have missed some. List the directory again, then follow from since=now.")
    if since > head:
        raise InvalidChanges(f"since={since} is past the newest change ({head}): pass a last_seq this feed gave.")
    deadline = time.monotonic() + wait
    while True:
        found, since = scan(directory, since, limit, head)
        if found or time.monotonic() >= deadline:
            return {"changes": found, "last_seq": since}
        if since == head:  # nothing more numbered yet: look again in a moment
            time.sleep(POLL_INTERVAL)
            head = sequencing.sequence()


def scan(directory, since, limit, head):
    """``(changes, last_seq)``: the changes under ``directory`` numbered in ``(since, head]``, at most ``limit``."""
    found, low = [], since
    under = keyrange.under(directory, indexed=False) if directory != "/" else None
    while low < head and low - since < SCAN_LIMIT:
        high = min(low + WINDOW, head)
        rows = Change.objects.filter(seq__gt=low, seq__lte=high)
        if under is not None:
            rows = rows.filter(under)
        for seq, key, op, item_id in rows.order_by("seq").values_list("seq", "key", "op", "item_id")[
            : limit - len(found)
        ]:
            found.append({"seq": seq, "key": key, "op": op, "_id": item_id})
        if len(found) >= limit:
            return found, found[-1]["seq"]
        low = high
    return found, low


@request_verb("_changes", method="GET")
def changes_view(request, directory):
    access.check(request, write=False)
    since, limit, wait = parse_params(request.GET)
    return json_response(changes(directory, since, limit, wait))
