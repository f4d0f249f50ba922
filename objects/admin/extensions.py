"""
Where other apps add to the admin's folder and item pages, without the
objects app importing them (the recognition app adds a folder's duplicates,
an item's similar items and tags, and ``_labels=`` in the find box).

- ``FOLDER_TOOLS``: functions ``(request, prefix) -> (label, url) | None``,
  links beside "Add item here" on a folder page;
- ``ITEM_PANELS``: functions ``(request, item) -> dict | None``, sections at
  the end of an item page: the dict is the context of the template it names
  under ``"template"``;
- ``FIND_FIELDS``: ``{"_name": function(query, value) -> query}``, what the
  find box's ``_name=value`` narrows an item queryset to, for what istore
  computes about items (a registered name wins over a metadata field that
  happens to share it).
"""
FOLDER_TOOLS = []
ITEM_PANELS = []
FIND_FIELDS = {}


def folder_tools(request, prefix):
    return [tool for tool in (function(request, prefix) for function in FOLDER_TOOLS) if tool]


def item_panels(request, item):
    return [panel for panel in (function(request, item) for function in ITEM_PANELS) if panel]
