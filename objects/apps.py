from django.apps import AppConfig


class ObjectsConfig(AppConfig):
    name = "objects"
    verbose_name = "Namespace"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Connects the cache's receivers of objects.signals (deleted keys drop
        # their cached derivatives) in every process, not only web workers.
        from . import bulk, cache, expand  # noqa: F401  (bulk and expand register their verbs)
