#!/usr/bin/env python3
"""
A recognizer living on istore: it follows what arrives under a directory, computes a
feature vector for each new picture, writes the vectors back in bulk, builds a
similarity index as a job, and asks for near-duplicates.

    python examples/recognizer.py --url http://127.0.0.1:8592 --dir /photos/ --once --query /photos/cat.jpg
    python examples/recognizer.py --url https://istore.example.org --dir /photos/ --token $TOKEN

Each step is one istore call, walked through in docs/pipelines.md:

1. ``GET {dir}/_changes?since=SEQ&wait=30``: the changes committed under the
   directory after SEQ, oldest first; the answer's ``last_seq`` is the next SEQ.
   Kept in ``--state`` (a file), so a restarted recognizer neither misses nor
   repeats a change.
2. For each created or updated key with content: ``GET`` the bytes, and compute
   the perceptual hash (imagehash's pHash, 64 bits) as a vector of 64 numbers,
   +1 for a set bit and -1 for a clear one, so that the angular distance istore
   ranks by grows with the Hamming distance between the hashes. Its own writes
   come back as changes too: an item whose ``phash_of`` is already its
   content's ETag is skipped, so the recognizer never feeds itself.
3. ``POST {dir}/_bulk``: one NDJSON line per picture, ``{"key": K, "metadata":
   {"phash_vec": [...], "phash": HEX, "phash_of": ETAG}}``.
4. ``POST {dir}/_create_index`` with ``Prefer: respond-async``: 202 and a job,
   followed at ``/_jobs/{id}`` until done, its progress printed.
5. ``POST {dir}/_search`` ``{"similar": {"to": QUERY, "by": "phash_vec"}}``:
   the nearest pictures, near-duplicates first.

Only the standard library, requests, Pillow and imagehash: nothing of istore is
imported, it talks HTTP as any other program would.
"""
import argparse
import io
import json
import sys
import time
from pathlib import Path

import imagehash
import requests
from PIL import Image, UnidentifiedImageError

FIELD = "phash_vec"


class Istore:
    """The few istore calls a recognizer makes."""

    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Token {token}"

    def changes(self, directory, since, wait=0, limit=1000):
        """``(changes, last_seq)`` under ``directory`` after ``since``."""
        answer = self.http.get(f"{self.url}{directory}_changes",
                               params={"since": since, "wait": wait, "limit": limit}, timeout=wait + 30)
        answer.raise_for_status()
        body = answer.json()
        return body["changes"], body["last_seq"]

    def item(self, key):
        """The item's JSON (``?meta=1``), None when it is gone."""
        answer = self.http.get(self.url + quote(key), params={"meta": "1"}, timeout=30)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()

    def content(self, key):
        answer = self.http.get(self.url + quote(key), timeout=60)
        answer.raise_for_status()
        return answer.content

    def bulk(self, directory, lines):
        """Write ``[{"key": ..., "metadata": ...}]`` in one ``_bulk`` request; its answer."""
        body = "".join(json.dumps(line) + "\n" for line in lines).encode()
        answer = self.http.post(f"{self.url}{directory}_bulk", data=body,
                                headers={"Content-Type": "application/x-ndjson"}, timeout=300)
        answer.raise_for_status()
        return answer.json()

    def create_index(self, directory, field, report=print):
        """Build the index of ``field`` under ``directory`` as a job, following it to its end; its result."""
        answer = self.http.post(f"{self.url}{directory}_create_index", data=json.dumps({"similar": {"by": field}}),
                                headers={"Prefer": "respond-async"}, timeout=60)
        if answer.status_code != 202:  # not a job after all (e.g. nothing to index): say why
            raise RuntimeError(f"_create_index answered {answer.status_code}: {answer.text}")
        location = answer.headers["Location"]
        while True:
            job = self.http.get(self.url + location, timeout=30).json()
            report(f"  job {job['job']}: {job['state']}, {job['progress']['done']}/{job['progress']['total']}")
            if job["state"] == "done":
                return job["result"]
            if job["state"] in ("failed", "cancelled"):
                raise RuntimeError(f"the index job ended {job['state']}: {job['error']}")
            time.sleep(0.5)

    def search(self, directory, key, field, limit=5):
        answer = self.http.post(f"{self.url}{directory}_search",
                                data=json.dumps({"similar": {"to": key, "by": field, "limit": limit}}), timeout=60)
        answer.raise_for_status()
        return answer.json()


def quote(key):
    from urllib.parse import quote as percent

    return percent(key, safe="/:@!$&'()*+,;=~")


def feature(data):
    """``(hex, vector)``: the picture's 64-bit pHash, and that hash as 64 numbers of ±1."""
    image = Image.open(io.BytesIO(data))
    image.load()
    digest = imagehash.phash(image)
    return str(digest), [1.0 if bit else -1.0 for bit in digest.hash.flatten()]


def recognize(store, directory, changes):
    """The ``_bulk`` lines for the pictures among ``changes`` that need a (new) vector."""
    lines = []
    for key in dict.fromkeys(change["key"] for change in changes if change["op"] != "delete"):
        item = store.item(key)
        content = (item or {}).get("_content")
        if not content:
            continue  # deleted since, or metadata only
        if item["metadata"].get("phash_of") == content.get("etag"):
            continue  # its vector is current: this change was our own write
        try:
            digest, vector = feature(store.content(key))
        except (UnidentifiedImageError, OSError):
            continue  # not a picture
        lines.append({"key": key, "metadata": {FIELD: vector, "phash": digest, "phash_of": content.get("etag")}})
    return lines


def run(store, directory, state=None, once=False, wait=30, query=None, report=print):
    """Follow ``directory`` (forever, or until no change is left with ``once``); index and search
    after each batch that wrote vectors. Returns the last search's answer (with ``query``)."""
    since = state.read_text().strip() if state and state.exists() else "0"
    found = None
    while True:
        changes, last_seq = store.changes(directory, since, wait=0 if once else wait)
        lines = recognize(store, directory, changes)
        if lines:
            answer = store.bulk(directory, lines)
            report(f"{len(lines)} picture(s) recognized: {answer['created']} created, {answer['updated']} updated, "
                   f"{len(answer['errors'])} error(s)")
            result = store.create_index(directory, FIELD, report)
            report(f"index: {result['indexed']} vectors")
        since = str(last_seq)
        if state:
            state.write_text(since)
        if query and (lines or found is None):
            found = store.search(directory, query, FIELD)
            report(f"nearest to {query}:")
            for item in found:
                report(f"  {item['_distance']:.3f}  {item['_filepath']}")
        if once and not changes:
            return found


def main(argv=None):
    parser = argparse.ArgumentParser(description="Follow a directory of istore, hash its pictures, index them.")
    parser.add_argument("--url", default="http://127.0.0.1:8592", help="istore's address")
    parser.add_argument("--dir", required=True, help="the directory to follow, e.g. /photos/")
    parser.add_argument("--token", help="an API token (writes need one unless anonymous writes are allowed)")
    parser.add_argument("--state", type=Path, help="a file that keeps the position in the change feed")
    parser.add_argument("--query", help="a key to search near-duplicates of after each batch")
    parser.add_argument("--once", action="store_true", help="stop when no change is left instead of waiting")
    args = parser.parse_args(argv)
    if not args.dir.startswith("/") or not args.dir.endswith("/"):
        parser.error("--dir must start and end with '/', e.g. /photos/")
    try:
        run(Istore(args.url, args.token), args.dir, args.state, args.once, query=args.query)
    except KeyboardInterrupt:
        return 0
    except (requests.RequestException, RuntimeError) as exc:
        print(f"recognizer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
