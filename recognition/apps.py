from django.apps import AppConfig


class RecognitionConfig(AppConfig):
    name = "recognition"
    verbose_name = "Recognition"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Register the built-in features with search (so _search and
        # _create_index take them by name) and the _duplicates verb.
        from . import builtins, receivers, verbs  # noqa: F401

        builtins.register()
