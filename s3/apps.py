from django.apps import AppConfig


class S3Config(AppConfig):
    name = "s3"
    verbose_name = "S3 protocol"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import receivers  # noqa: F401 - connects to objects.signals
