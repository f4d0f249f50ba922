"""Health, readiness, metrics and request logs."""
import json
import logging

from tests.conftest import body


def test_ready_checks_database_and_storage(client, db):
    response = client.get("/_ready")
    assert response.status_code == 200
    assert body(response) == {"status": "ready", "database": "ok", "storage": "ok"}


def test_ready_is_503_when_storage_fails(client, db, monkeypatch):
    from django.core.files.storage import FileSystemStorage

    def broken(self, name):
        raise OSError("disk gone")

    monkeypatch.setattr(FileSystemStorage, "exists", broken)
    response = client.get("/_ready")
    assert response.status_code == 503
    assert body(response)["error"] == "storage_unavailable"


def test_metrics_count_requests(api, client):
    api.post("/m/a", {"x": 1})
    api.get("/m/")
    text = client.get("/_metrics").content.decode()
    assert 'istore_requests_total{kind="key",method="POST",status="201"}' in text
    assert 'istore_requests_total{kind="directory",method="GET",status="200"}' in text
    assert "istore_request_seconds_bucket" in text


def test_metric_labels_come_from_fixed_sets_whatever_the_client_sends(api, client):
    import re

    from objects import keys, metrics

    for index in range(40):
        client.generic(f"M{index}THOD", f"/_x{index}/y")
        client.get(f"/_probe{index}")
        client.get(f"/dir/_verb{index}")
    text = client.get("/_metrics").content.decode()
    methods = set(re.findall(r'istore_requests_total\{[^}]*method="([^"]*)"', text))
    kinds = set(re.findall(r'istore_requests_total\{[^}]*kind="([^"]*)"', text))
    assert methods <= metrics.METHODS | {"other"}, f"client methods became labels: {methods - metrics.METHODS}"
    allowed = metrics.RESERVED | set(keys.VERBS) | {"reserved", "directory", "key"}
    assert kinds <= allowed, f"client paths became labels: {kinds - allowed}"
    assert 'method="other"' in text and 'kind="reserved"' in text


def test_request_log_is_one_json_line(api, caplog):
    with caplog.at_level(logging.INFO, logger="istore.requests"):
        api.post("/log/a", {"x": 1})
    record = json.loads(caplog.records[-1].getMessage())
    assert record["method"] == "POST" and record["path"] == "/log/a" and record["status"] == 201
    assert record["ms"] >= 0


def test_metrics_count_derivative_cache_hits_and_processing(api, client):
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(out, "PNG")
    api.upload("/m/img.png", out.getvalue(), content_type="image/png")
    for _ in range(2):
        assert api.get("/m/img.png", "apply=resize&w=10").status_code == 200
    text = client.get("/_metrics").content.decode()
    assert 'istore_cache_lookups_total{outcome="hit",what="derivative"}' in text
    assert 'istore_cache_lookups_total{outcome="miss",what="derivative"}' in text
    assert 'istore_processing_seconds_count{operation="resize"}' in text


def test_metrics_count_bytes_fetched(api, client, origin):
    url = origin.add("/m.bin", b"x" * 1000)
    api.post(f"/m/{url}")
    assert api.get(f"/m/{url}").status_code == 200
    text = client.get("/_metrics").content.decode()
    assert 'istore_source_bytes_total{scheme="http"}' in text
