"""Keeps ``PartLayout`` in step with the blobs it describes."""
from django.dispatch import receiver

from objects import signals
from objects.models import Item

from .models import PartLayout


@receiver(signals.content_forgotten, sender=Item)
def forget_layout(sender, name, **kwargs):
    PartLayout.objects.filter(blob=name).delete()
