"""
The recognition app's kind of job, ``recognition.features``: compute the
features of a few items (``{"items": [id, ...]}``), queued by
``background.items_saved`` for every picture that is written.

It runs on the jobs app's queue like the verbs' jobs, so it is durable and
shows at ``/_jobs/{id}`` with its progress (one step per item) and its
result, ``{"computed": n, "skipped": m, "failed": [[id, "code: detail"], ...]}``.
Running it again is harmless: items whose features are current are skipped.
"""
from jobs import queue

KIND = "recognition.features"


@queue.register(KIND)
def compute_features(params, progress):
    from . import background

    return 200, background.refresh_items(params["items"], progress)


def enqueue_features(item_ids):
    """Queue one job for ``item_ids``, in the caller's transaction."""
    return queue.enqueue(KIND, {"items": list(item_ids)})
