from django.apps import AppConfig


class FeedConfig(AppConfig):
    name = "feed"
    verbose_name = "Change feed"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Record every write of objects.writing, and register GET {dir}/_changes.
        from . import receivers, views  # noqa: F401
