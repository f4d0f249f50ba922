"""The search migrations carry existing vector rows over."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from objects import writing
from objects.keys import PREFIX_CHARS

BEFORE = [("search", "0001_initial")]
AFTER = [("search", "0002_vector_key_prefix_chars")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_long_keys_get_the_longer_key_prefix():
    Vector = migrate(BEFORE).get_model("search", "Vector")
    key = "/m/" + "k" * 700
    item, _ = writing.write(key, {})  # the objects app stays migrated
    for field in ("v", "f" * 151):
        Vector.objects.create(item_id=item.id, field=field, dim=1, key=key, key_prefix=key[:255],
                              vector=b"\0\0\x80?")
    try:
        new = migrate(AFTER)
        rows = list(new.get_model("search", "Vector").objects.values_list("field", "key_prefix"))
        assert rows == [("v", key[:PREFIX_CHARS])], "the prefix must be widened; over-long field names dropped"
    finally:
        migrate(AFTER)
