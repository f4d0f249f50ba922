"""
``_features`` in ``GET {key}?meta=1``: what the item's stored features say.

    "_features": {"phash": "<16 hex>", "pdq": "<64 hex>", "pdq_quality": 0..100,
                  "embedding": {"model": "<name>@<version>", "dims": 1280},
                  "labels": [{"label": "cat", "score": 0.92}, ...], "computed": "<time>"}

The shape of ``?apply=features`` without the vector (1280 numbers would
drown the item; ``?apply=features`` returns it). Features that are not
computed yet, or were computed by another model or version of the code, are
left out until the background computation has stored current ones; when
the content could not be read as a picture the field says why:
``{"error": "...", "computed": "<time>"}``.
"""
from objects.details import detail
from processing.features import efficientnet

from . import store


def render(features):
    """The ``_features`` rendering of a stored, current Features row."""
    computed = features.computed.isoformat() if features.computed else None
    if features.error:
        return {"error": features.error, "computed": computed}
    return {
        "phash": bytes(features.phash).hex(),
        "pdq": bytes(features.pdq).hex(),
        "pdq_quality": features.pdq_quality,
        "embedding": {"model": efficientnet.MODEL, "dims": efficientnet.EMBEDDING_DIMS},
        "labels": features.labels,
        "computed": computed,
    }


@detail("_features")
def features_of(item):
    features = store.current(item.id)
    return render(features) if features is not None else None
