from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Similarity search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Register the verbs with objects.verbs and connect the receivers that
        # keep the packed vectors current on every write.
        from . import receivers, verbs  # noqa: F401
