"""
Jobs in the admin: every user's jobs, their state and progress, and a cancel
action (the same as ``DELETE /_jobs/{id}``). Jobs are made by the API, never here.
"""
from django.contrib import admin, messages

from . import queue
from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "dir", "owner", "state", "progress", "created", "finished", "attempts")
    list_filter = ("state", "kind")
    search_fields = ("id", "owner__username")
    actions = ["cancel"]
    readonly_fields = [field.name for field in Job._meta.fields]

    @admin.display(description="dir")
    def dir(self, job):
        return job.params.get("dir", "") if isinstance(job.params, dict) else ""

    @admin.display(description="progress")
    def progress(self, job):
        return f"{job.done} / {job.total}" if job.total else "—"

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request, queryset):
        cancelled = sum(queue.cancel(job) for job in queryset)
        messages.success(request, f"{cancelled} job(s) cancelled (finished ones are left as they are).")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
