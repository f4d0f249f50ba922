"""
The Item admin: Django's admin machinery (login, permissions, CSRF, history)
around istore's own pages.

The stock change list (COUNT(*) per page, OFFSET paging, ``LIKE '%...%'``
search) and the stock change form (which would save the model directly,
bypassing merge semantics, locking and content clean-up) are replaced by the
views in views.py; this class only routes to them.
"""
from django.contrib import admin
from django.urls import path

from .. import writing
from ..models import Item
from . import views


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    actions = None

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        custom = [
            path("delete-folder/", self.admin_site.admin_view(self.delete_folder_view),
                 name="%s_%s_delete_folder" % info),
        ]
        return custom + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        return views.folder(self, request)

    def add_view(self, request, form_url="", extra_context=None):
        return views.add(self, request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return views.item(self, request, object_id)

    def delete_view(self, request, object_id, extra_context=None):
        return views.delete_item(self, request, object_id)

    def delete_folder_view(self, request):
        return views.delete_folder(self, request)

    # Django's own paths to saving and deleting, should anything reach them,
    # go through objects.writing too: never a bare Model.save() or delete().
    def save_model(self, request, obj, form, change):
        writing.write(obj.key, obj.metadata, replace=True)

    def delete_model(self, request, obj):
        writing.delete(obj.key)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            writing.delete(obj.key)
