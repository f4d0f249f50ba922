"""
Read-only fields that other apps add to an item's ``?meta=1`` answer.

``GET {key}?meta=1`` answers the item as the API renders it everywhere
(``Item.as_dict``) plus, for one item only, fields that cost a query each and
so stay out of listings: the recognition app's ``_features``, for instance.
An app registers a function of the item that returns the field's value, or
None to leave the field out; objects never imports the apps that register.
"""
DETAILS = {}


def detail(name):
    """Register the decorated function ``(item) -> value | None`` as the field ``name``."""
    if not name.startswith("_"):
        raise ValueError(f"{name!r}: fields istore adds to an item start with '_' (metadata is the user's)")

    def register(function):
        DETAILS[name] = function
        return function

    return register


def describe(item):
    """The item's ``?meta=1`` rendering: ``as_dict()`` and every registered field that has a value."""
    data = item.as_dict()
    for name, function in DETAILS.items():
        value = function(item)
        if value is not None:
            data[name] = value
    return data
