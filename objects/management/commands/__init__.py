"""istore's ``manage.py`` commands: export_items, import_items, import_files, import_urls."""
