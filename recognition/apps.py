from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RecognitionConfig(AppConfig):
    name = "recognition"
    verbose_name = "Recognition"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # onnxruntime must be loaded before usearch (search's ANN library) in
        # any process: usearch's extension carries its own copy of libstdc++,
        # and onnxruntime's extension segfaults while it loads when that copy
        # came first (usearch 2.26.6, onnxruntime 1.32.0). Apps are ready
        # before any request or command imports usearch, which only ever
        # loads lazily.
        import onnxruntime  # noqa: F401

        # Register the built-in features with search (so _search and
        # _create_index take them by name), the _duplicates verb, _features
        # in ?meta=1, the receivers that keep features current and their job.
        from . import background, builtins, meta, receivers, tasks, verbs  # noqa: F401

        builtins.register()
        post_migrate.connect(background.queue_stale, sender=self, dispatch_uid="recognition.queue_stale")
