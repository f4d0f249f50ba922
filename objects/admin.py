from django.contrib import admin

from .models import Item


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("key", "id", "updated")
    search_fields = ("key",)
    readonly_fields = ("key", "id", "created", "updated")
