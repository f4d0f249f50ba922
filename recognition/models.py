"""
The features computed for an item, and what they were computed from.

One ``Features`` row per item whose content is (or was tried as) a picture.
The embedding and the two hashes that searches compare also live in
``search.models.Vector`` (fields ``_embedding``, ``_phash``, ``_pdq``), so
exact search, ANN indexes and their freshness rules are the search app's;
this table keeps what those rows cannot: the mirror-image hashes a query
uses, the PDQ quality, the labels, the version of the features code and
model, and the version of the content they describe. A row whose
``version`` is not ``processing.features.VERSION`` is stale (a new model or
preprocessing): its item is computed again.
"""
from django.db import models


class Features(models.Model):
    item = models.OneToOneField("objects.Item", on_delete=models.CASCADE, primary_key=True, related_name="+")
    version = models.CharField(max_length=100)  # processing.features.VERSION that computed them
    source_version = models.CharField(max_length=300, blank=True, default="")  # the bytes they describe
    error = models.TextField(blank=True, default="")  # why there are none (not a picture, ...)
    phash = models.BinaryField(null=True)
    phash_mirror = models.BinaryField(null=True)
    pdq = models.BinaryField(null=True)
    pdq_mirror = models.BinaryField(null=True)
    pdq_quality = models.SmallIntegerField(null=True)
    labels = models.JSONField(default=list, blank=True)
    computed = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "features"
        verbose_name_plural = "features"

    def __str__(self):
        return f"features of item {self.item_id}"


class Tag(models.Model):
    """One of an item's tags: a label of its features scoring at least
    ``TAG_MIN_SCORE``, lower-cased, so the admin's find (``_labels=cat``)
    looks items up by tag through an index."""

    item = models.ForeignKey("objects.Item", on_delete=models.CASCADE, related_name="+", db_index=False)
    label = models.CharField(max_length=100)
    score = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "label"], name="recognition_tag_item_label")]
        indexes = [models.Index(fields=["label", "item"], name="recognition_tag_label")]

    def __str__(self):
        return f"{self.label} ({self.score:.2f}) on item {self.item_id}"


# A label counts as a tag from this score up: below it the model is guessing
# (the fifth label of a photograph often scores under 0.01).
TAG_MIN_SCORE = 0.1
