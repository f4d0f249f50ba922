"""Vector.key_prefix holds as many characters as Item.key_prefix
(objects.keys.PREFIX_CHARS, 512 instead of 255), so one key-range query
serves both tables; metadata fields named with more than 150 characters are
no longer tracked (their rows could not be indexed with the longer prefix)."""
from django.db import migrations
from django.db.models.functions import Length, Substr

import objects.models

OLD_PREFIX_CHARS = 255
PREFIX_CHARS = 512
MAX_FIELD_CHARS = 150


def drop_long_field_names(apps, schema_editor):
    Vector = apps.get_model("search", "Vector")
    Vector.objects.alias(length=Length("field")).filter(length__gt=MAX_FIELD_CHARS).delete()


def prefix_to(chars):
    def run(apps, schema_editor):
        Vector = apps.get_model("search", "Vector")
        long_keys = Vector.objects.alias(length=Length("key")).filter(length__gt=OLD_PREFIX_CHARS)
        long_keys.update(key_prefix=Substr("key", 1, chars))

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("search", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(drop_long_field_names, migrations.RunPython.noop),
        # Reversed, the prefixes are cut back before the column narrows.
        migrations.RunPython(migrations.RunPython.noop, prefix_to(OLD_PREFIX_CHARS)),
        migrations.AlterField(
            model_name="vector",
            name="key_prefix",
            field=objects.models.BytewiseCharField(max_length=PREFIX_CHARS),
        ),
        migrations.RunPython(prefix_to(PREFIX_CHARS), migrations.RunPython.noop),
    ]
