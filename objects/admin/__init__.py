"""
The Django admin at /_admin/ as a curator's tool (SPEC §10).

- items.py: the Item admin, whose pages are istore's own views (views.py):
  folders instead of a change list, an item page with previews and a JSON
  editor, deletes of items and folders that state their count;
- tokens.py: API tokens (create, list, revoke) for users.

See docs/admin.md for what a curator can do and what each page costs.
"""
from django.contrib import admin

from . import items, tokens  # noqa: F401  (registration)

admin.site.site_header = "istore"
admin.site.site_title = "istore admin"
admin.site.index_title = "Namespace, users and API tokens"
# "View site" would link to GET /, the listing of the whole store.
admin.site.site_url = None
