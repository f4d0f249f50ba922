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
