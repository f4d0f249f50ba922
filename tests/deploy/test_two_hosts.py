"""Several hosts, one store: nothing either host keeps locally is needed (issue 8)."""
import requests


def test_write_through_one_is_read_through_the_other(two_hosts):
    a, b, auth = two_hosts["a"], two_hosts["b"], two_hosts["auth"]
    created = requests.post(f"{a}/shared/k", data={"metadata": '{"from": "a"}'}, headers=auth, timeout=30)
    assert created.status_code == 201, created.text
    seen = requests.get(f"{b}/shared/k?meta=1", timeout=30)
    assert seen.status_code == 200 and seen.json()["metadata"] == {"from": "a"}
    merged = requests.post(f"{b}/shared/k", data={"metadata": '{"from_b": true}'}, headers=auth, timeout=30)
    assert merged.json()["_id"] == created.json()["_id"]
    assert requests.get(f"{a}/shared/k?meta=1", timeout=30).json()["metadata"] == {"from": "a", "from_b": True}


def test_upload_through_one_is_served_by_the_other(two_hosts):
    a, b, auth = two_hosts["a"], two_hosts["b"], two_hosts["auth"]
    payload = bytes(range(256)) * 1000
    put = requests.put(f"{a}/shared/blob.bin", data=payload,
                       headers={**auth, "Content-Type": "application/octet-stream"}, timeout=30)
    assert put.status_code == 201, put.text
    served = requests.get(f"{b}/shared/blob.bin", timeout=30)
    assert served.status_code == 200 and served.content == payload, "host b must serve host a's upload from S3"
    ranged = requests.get(f"{b}/shared/blob.bin", headers={"Range": "bytes=10-19"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == payload[10:20]
    assert not list((two_hosts["work"] / "a").rglob("content/*/*/*")), "uploads must not stay on host a's disk"


def test_new_upload_through_one_is_never_replayed_stale_by_the_other(two_hosts):
    a, b, auth = two_hosts["a"], two_hosts["b"], two_hosts["auth"]
    headers = {**auth, "Content-Type": "application/octet-stream"}
    requests.put(f"{a}/shared/replayed.bin", data=b"first", headers=headers, timeout=30)
    for _ in range(3):  # host b records its answer, then replays it
        assert requests.get(f"{b}/shared/replayed.bin", timeout=30).content == b"first"
    requests.put(f"{a}/shared/replayed.bin", data=b"second", headers=headers, timeout=30)
    assert requests.get(f"{b}/shared/replayed.bin", timeout=30).content == b"second", \
        "host b replayed content that host a had replaced"


def test_delete_through_one_is_gone_on_the_other(two_hosts):
    a, b, auth = two_hosts["a"], two_hosts["b"], two_hosts["auth"]
    requests.post(f"{a}/gone/x", data={"metadata": "{}"}, headers=auth, timeout=30)
    assert requests.delete(f"{b}/gone/", headers=auth, timeout=30).json() == {"deleted": 1}
    assert requests.get(f"{a}/gone/x?meta=1", timeout=30).status_code == 404


def test_listing_is_the_same_on_both(two_hosts):
    a, b, auth = two_hosts["a"], two_hosts["b"], two_hosts["auth"]
    for i, host in enumerate([a, b, a, b]):
        requests.post(f"{host}/both/{i}", data={"metadata": "{}"}, headers=auth, timeout=30)
    assert requests.get(f"{a}/both/", timeout=30).json() == requests.get(f"{b}/both/", timeout=30).json()


def test_writes_need_a_token_on_every_host(two_hosts):
    for host in (two_hosts["a"], two_hosts["b"]):
        assert requests.post(f"{host}/anon/x", data={"metadata": "{}"}, timeout=30).status_code == 401


def _processing_count(host, operation):
    """istore_processing_seconds_count for ``operation`` on one host (all its workers)."""
    total = 0.0
    for line in requests.get(f"{host}/_metrics", timeout=30).text.splitlines():
        if line.startswith("istore_processing_seconds_count{") and f'operation="{operation}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_identical_processing_on_both_hosts_computes_once(two_hosts):
    """Single flight across hosts: a Redis lock, and the result shared through Redis."""
    import io
    import threading

    import numpy as np
    from PIL import Image

    a, b, auth = two_hosts["a"], two_hosts["b"], two_hosts["auth"]
    # Fresh noise: big enough for the requests to overlap while one computes, and never computed
    # before (results stay shared in Redis for minutes).
    pixels = np.random.default_rng().integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG", compress_level=1)
    put = requests.put(f"{a}/flight/noise.png", data=png.getvalue(),
                       headers={**auth, "Content-Type": "image/png"}, timeout=60)
    assert put.status_code == 201, put.text
    # Warm every worker of both hosts up (imports of the processing stack), so
    # that the six requests below really run side by side on the two hosts.
    small = io.BytesIO()
    Image.fromarray(pixels[:64, :64]).save(small, format="PNG")
    requests.put(f"{a}/flight/small.png", data=small.getvalue(), headers={**auth, "Content-Type": "image/png"},
                 timeout=60)
    for n in range(8):
        host = (a, b)[n % 2]
        assert requests.get(f"{host}/flight/small.png?apply=resize&w={n + 1}", timeout=60).status_code == 200
    before = _processing_count(a, "resize") + _processing_count(b, "resize")

    barrier = threading.Barrier(6)
    answers = [None] * 6

    def get(n):
        host = (a, b)[n % 2]
        barrier.wait()
        answers[n] = requests.get(f"{host}/flight/noise.png?apply=resize&w=50", timeout=120)

    threads = [threading.Thread(target=get, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in answers] == [200] * 6, [r.text[:200] for r in answers]
    assert len({r.content for r in answers}) == 1 and len({r.headers["ETag"] for r in answers}) == 1
    assert Image.open(io.BytesIO(answers[0].content)).size == (50, 50)
    computed = _processing_count(a, "resize") + _processing_count(b, "resize") - before
    assert computed == 1, f"6 identical requests over two hosts computed {computed} times, not once"


def test_index_built_through_one_is_used_by_the_other(two_hosts):
    a, b, auth = two_hosts["a"], two_hosts["b"], two_hosts["auth"]
    vectors = {"0": [0.5, 0.8], "a": [1, 0], "b": [0, 1], "c": [-0.1, -0.1]}
    for name, vector in vectors.items():
        requests.post(f"{a}/vec/http://example.com/{name}.jpg", data={"metadata": f'{{"vec": {vector}}}'},
                      headers=auth, timeout=30)
    built = requests.post(f"{a}/vec/_create_index", data='{"similar": {"by": "vec"}}', headers=auth, timeout=60)
    assert built.status_code == 201, built.text
    found = requests.post(f"{b}/vec/_search", headers=auth, timeout=60,
                          data='{"similar": {"to": "/vec/http://example.com/0.jpg", "by": "vec"}}')
    assert found.status_code == 200, found.text
    assert [item["_filepath"].rsplit("/", 1)[1] for item in found.json()] == ["0.jpg", "b.jpg", "a.jpg", "c.jpg"]
    downloaded = list((two_hosts["work"] / "b").rglob("search-cache/**/*"))
    assert any(path.is_file() for path in downloaded), "host b must load the index host a stored in S3"
