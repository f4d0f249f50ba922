"""
Vectors in metadata: which values are vectors, and their packed form.

A top-level metadata field is a vector when its value is a non-empty list of
numbers (JSON numbers, not booleans), all finite and not all zero: a zero
vector has no direction, so no angular distance. It is packed normalised to
unit length as little-endian float32 (``DTYPE``); the angular distance
0.5 − 0.5·cos θ does not depend on length.
"""
import math

import numpy as np

from .models import MAX_FIELD_CHARS
from .spaces import DTYPE, is_builtin

NUMBER_TYPES = (int, float)


def as_unit(value):
    """``value`` as a unit float64 vector, or None when it is not a vector."""
    if not isinstance(value, list) or not value:
        return None
    for number in value:
        if type(number) not in NUMBER_TYPES:  # bool is an int subclass: excluded here
            return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (OverflowError, ValueError, TypeError):  # integers beyond float range
        return None
    if not np.isfinite(array).all():
        return None
    scale = float(np.abs(array).max())
    if scale == 0.0:
        return None
    array = array / scale  # no overflow in the norm of huge values
    return array / math.sqrt(float(array @ array))


def pack(unit):
    return unit.astype(DTYPE).tobytes()


def unpack(blob, dim):
    return np.frombuffer(blob, dtype=DTYPE, count=dim)


def extract(metadata):
    """``{field: unit float64 vector}`` for every vector field of ``metadata``
    (a built-in field's name, such as ``_embedding``, is never one: those
    vectors come from the app that computes them)."""
    found = {}
    if not isinstance(metadata, dict):
        return found
    for field, value in metadata.items():
        if not isinstance(value, list) or len(field) > MAX_FIELD_CHARS or is_builtin(field):
            continue
        unit = as_unit(value)
        if unit is not None:
            found[field] = unit
    return found
