"""
Exactly once across hosts: writers on two gunicorn hosts that share one
database (the suite's: a SQLite file, or a throwaway PostgreSQL database)
commit concurrently while a follower long-polls both hosts in turn; the
follower must see every acknowledged write exactly once, with numbers that
only go up.
"""
import json
import random
import threading
import time
from collections import Counter

import requests

WRITERS = 6
OPERATIONS = 60  # per writer
SHARED_KEYS = 5  # keys every writer writes, so creators race


def writer(hosts, number, acknowledged, failures):
    """POSTs, deletes and _bulk requests, each to a host picked at random; records what was acknowledged."""
    session, rng = requests.Session(), random.Random(number)
    mine = f"/x/w{number}/"
    for step in range(OPERATIONS):
        host = rng.choice(hosts)
        choice = step % 6
        if choice in (0, 1, 2):  # a new key, then maybe merges into it
            key = f"{mine}k{step // 6}"
            response = session.post(host + key, data={"metadata": json.dumps({"step": step})}, timeout=60)
            acknowledged_as = {201: "create", 200: "update"}.get(response.status_code)
        elif choice == 3:  # a key every writer writes
            key = f"/x/shared/s{rng.randrange(SHARED_KEYS)}"
            response = session.post(host + key, data={"metadata": json.dumps({f"w{number}": step})}, timeout=60)
            acknowledged_as = {201: "create", 200: "update"}.get(response.status_code)
        elif choice == 4:
            key = f"{mine}k{step // 6}"
            response = session.delete(host + key, timeout=60)
            acknowledged_as = "delete" if response.status_code == 200 else None
        else:
            lines = [{"key": f"b{step}-{i}", "metadata": {"i": i}} for i in range(10)]
            response = session.post(f"{host}{mine}_bulk", data="".join(json.dumps(line) + "\n" for line in lines),
                                    timeout=60)
            if response.status_code == 200 and response.json()["created"] == 10:
                acknowledged.extend(("create", f"{mine}b{step}-{i}") for i in range(10))
                continue
            acknowledged_as, key = None, f"{mine}_bulk"
        if acknowledged_as is None:
            failures.append((key, response.status_code, response.text[:200]))
        else:
            acknowledged.append((acknowledged_as, key))


def test_a_follower_sees_every_acknowledged_write_once(gunicorn, server_database, tmp_path):
    hosts = [gunicorn({"DATABASE_URL": server_database, "ISTORE_DATA_DIR": str(tmp_path / name)}, workers=2)[0]
             for name in ("a", "b")]
    since = requests.get(f"{hosts[0]}/x/_changes?since=now", timeout=30).json()["last_seq"]
    acknowledged, failures, seen, seqs = [], [], [], []
    writing = threading.Event()
    writing.set()

    def follow():
        nonlocal since
        turn, deadline = 0, None
        while True:
            answer = requests.get(f"{hosts[turn % 2]}/x/_changes?since={since}&limit=50&wait=1", timeout=90).json()
            turn += 1
            seen.extend((change["op"], change["key"]) for change in answer["changes"])
            seqs.extend(change["seq"] for change in answer["changes"])
            since = answer["last_seq"]
            if not writing.is_set():
                deadline = deadline or time.monotonic() + 60
                if (len(seen) >= len(acknowledged) and not answer["changes"]) or time.monotonic() > deadline:
                    return

    follower = threading.Thread(target=follow)
    follower.start()
    threads = [threading.Thread(target=writer, args=(hosts, number, acknowledged, failures))
               for number in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writing.clear()
    follower.join()
    assert failures == [], f"writes that were refused: {failures[:5]}"
    assert seqs == sorted(set(seqs)), "the numbers a follower gets only go up and never repeat"
    missing = Counter(acknowledged) - Counter(seen)
    extra = Counter(seen) - Counter(acknowledged)
    assert not missing and not extra, f"missed {list(missing.items())[:5]}, unacknowledged or twice {list(extra.items())[:5]}"
    assert len(seen) == len(acknowledged) > WRITERS * OPERATIONS
