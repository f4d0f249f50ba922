"""
Every query that reads the items under a prefix walks the key index in order
and stops after the page, whatever the database believes about the table.

Each test fills the store, makes the database believe something about it
(nothing at all, a handful of rows, a billion rows, or what an ANALYZE saw
when the table was small), captures the statements istore sends for real
requests (listing pages and streams, ``delimiter=/`` pages, the admin's folder
page and find, ``_search``, S3 listings, deleting a directory) and EXPLAINs
each of them as sent. Speed itself is measured in benchmarks/listing_bench.py,
never here.
"""
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from objects import writing
from objects.models import Item
from s3 import listings as s3_listings
from s3 import names as s3_names
from search import exact
from tests.admin.conftest import folder_url

ROWS = 5000
# The indexes a statement may walk, per table. Rows written since a
# watermark may also be walked in id order from the watermark.
WALKS = {"objects_item": {"item_key_prefix"},
         "search_vector": {"search_vector_range", "search_vector_changes", "search_vector_pkey", "PRIMARY KEY"}}
TABLES = tuple(WALKS)


BELIEFS = ["never analyzed", "believed tiny", "believed huge", "analyzed when small", "analyzed"]
# SQLite keeps statistics only where ANALYZE wrote them (istore never runs
# it), so what it can believe is what some ANALYZE saw.
SQLITE_BELIEFS = ["never analyzed", "analyzed when small", "analyzed"]


@pytest.fixture(params=BELIEFS)
def store(request, db, settings, tmp_path):
    """ROWS keys under /plan/big/ (one in ten in 100 sub-directories), written
    in an order unrelated to key order, a few elsewhere, and 300 items with
    vectors under /plan/vec/, with the planner believing ``request.param``
    about the tables."""
    if connection.vendor == "sqlite" and request.param not in SQLITE_BELIEFS:
        pytest.skip("SQLite has no statistics of its own making")
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    for key in ["/plan/", "/plan/a", "/plan/z/1", "/zz"]:
        writing.write(key, {})
    if request.param == "analyzed when small":
        analyze()
    items = []
    for n in range(ROWS):
        i = n * 7919 % ROWS
        items.append(Item(metadata={"n": i}))
        items[-1].set_key(f"/plan/big/s{i % 100:02d}/{i:06d}" if i % 10 == 0 else f"/plan/big/{i:06d}")
    Item.objects.bulk_create(items, batch_size=2000)
    writing.upsert_many([(f"/plan/vec/{i:04d}", {"v": [1, i % 17, i % 5]}) for i in range(300)])
    if request.param == "analyzed":
        analyze()
    elif request.param != "analyzed when small":
        believe(request.param)
    return request.param


def analyze():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        if connection.vendor == "sqlite":
            cursor.execute("ANALYZE sqlite_schema")  # load the statistics


def believe(belief):
    """Make the planner believe ``belief`` about the tables, and nothing
    else: no statistics of any column (inside the test's transaction, so it
    is all rolled back)."""
    tuples = {"never analyzed": None, "believed tiny": 10, "believed huge": 10**9}[belief]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("ANALYZE")
            cursor.execute("DELETE FROM sqlite_stat1")
            cursor.execute("ANALYZE sqlite_schema")  # reload the statistics
            return
        for table in TABLES:
            cursor.execute("DELETE FROM pg_statistic WHERE starelid = %s::regclass", [table])
            # The planner scales reltuples / relpages to the table's current
            # size in pages: what it believes is a density.
            cursor.execute(
                "UPDATE pg_class SET reltuples = %s, relpages = CASE WHEN %s < 0 THEN 0 ELSE "
                "greatest(pg_relation_size(oid) / current_setting('block_size')::int, 1) END WHERE oid = %s::regclass",
                [-1 if tuples is None else tuples, -1 if tuples is None else tuples, table])


def requests(client, admin_client):
    """The requests whose statements are checked, as ``{label: callable}``."""
    def stream(path):
        def read():
            response = client.get(path)
            assert response.status_code == 200
            return b"".join(response.streaming_content)
        return read

    def get(path, response_client=client):
        def read():
            response = response_client.get(path)
            assert response.status_code == 200, response.content[:300]
        return read

    def search():
        response = client.post("/plan/vec/_search", json.dumps({"similar": {"vector": [1, 2, 3], "by": "v"}}),
                               content_type="application/json")
        assert response.status_code == 200, response.content

    def delete():
        assert client.delete("/plan/big/s07/").status_code == 200

    return {
        "first page": get("/plan/big/?limit=100"),
        "next page": get("/plan/big/?limit=100&after=/plan/big/010000"),
        "delimiter page of the root": get("/?delimiter=/&limit=100"),
        "delimiter page of the prefix": get("/plan/big/?delimiter=/&limit=100"),
        "streamed listing": stream("/plan/big/"),
        "streamed delimiter listing": stream("/plan/?delimiter=/"),
        "admin folder page": get(folder_url("/plan/big/"), admin_client),
        "admin find": get(folder_url("/plan/big/", q="0123"), admin_client),
        "_search": search,
        "search's rows written since a watermark": lambda: exact.changed_since("/plan/vec/", "v", 3, 0),
        "S3 bucket check": lambda: s3_names.bucket_exists("plan"),
        "S3 listing page": lambda: s3_listings.page("plan", "big/", "", None, 100, owner=False),
        "S3 delimiter page": lambda: s3_listings.page("plan", "big/", "/", "big/s50/", 100, owner=True),
        "DELETE a directory": delete,
    }


def range_statements(captured):
    """The captured statements that read a key range of the store's tables."""
    return [query["sql"] for query in captured
            if re.search(r'\bFROM "(objects_item|search_vector)"', query["sql"])
            and re.search(r'"(key_prefix|key)" [<>=]', query["sql"])]


def explain_postgresql(sql):
    """The JSON plan of ``sql`` exactly as istore sent it (a statement with its
    planner setting around it is explained in the same simple query)."""
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("SELECT", "EXPLAIN (FORMAT JSON) SELECT", 1))
        while cursor.description is None or cursor.description[0].name != "QUERY PLAN":
            cursor.nextset()
        plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def nodes(plan):
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def check_postgresql(sql):
    """What is wrong with the plan of ``sql``, or None."""
    plan = list(nodes(explain_postgresql(sql)))
    kinds = [node["Node Type"] for node in plan]
    if {"Sort", "Incremental Sort"} & set(kinds):
        return f"a sort in {kinds}"
    scans = [node for node in plan if node.get("Relation Name") in TABLES]
    for scan in scans:
        if scan["Node Type"] not in ("Index Scan", "Index Only Scan") or scan["Index Name"] not in WALKS[
                scan["Relation Name"]]:
            return f"{scan['Node Type']} on {scan.get('Index Name')}"
        if scan["Scan Direction"] != "Forward" or "Index Cond" not in scan:
            return f"{scan['Scan Direction']} scan of {scan['Index Name']} from {scan.get('Index Cond', 'its start')}"
    if " LIMIT " in sql and "Limit" not in kinds:
        return f"no Limit in {kinds}"
    return None


def check_sqlite(sql):
    """What is wrong with the plan of ``sql``, or None."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql)
        details = [row[3] for row in cursor.fetchall()]
    if any("TEMP B-TREE" in detail for detail in details):
        return f"a sort: {details}"
    for detail in details:
        read = re.match(r"(SCAN|SEARCH) (objects_item|search_vector)\b", detail)
        if read:
            walk = re.match(r"SEARCH \w+ USING (?:(?:COVERING )?INDEX (\w+)|INTEGER (PRIMARY KEY)) \(", detail)
            if not walk or (walk.group(1) or walk.group(2)) not in WALKS[read.group(2)]:
                return f"not a walk of a key index from a bound: {details}"
    return None


def test_range_queries_walk_the_key_index_whatever_the_statistics(store, client, admin_client):
    check = check_postgresql if connection.vendor == "postgresql" else check_sqlite
    for label, request in requests(client, admin_client).items():
        with CaptureQueriesContext(connection) as captured:
            request()
        statements = range_statements(captured.captured_queries)
        assert statements, f"{label}: no key-range statement captured"
        for sql in statements:
            problem = check(sql)
            assert problem is None, f"{store}, {label}: {problem}\n{sql[:600]}"


def test_the_planner_setting_ends_with_the_statement(db, api):
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL gets a planner setting")
    api.post("/p/a")
    assert api.keys("/p/") == ["/p/a"]
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_sort")
        assert cursor.fetchone()[0] == "on", "a listing inside a transaction must not leave sorting off"
