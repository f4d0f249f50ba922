"""
The long fuzz run of the HTTP API (issue 9 §1): the test
``tests/security/test_fuzz_api.py::test_fuzz_http_api`` for a fixed time
(5 minutes by default) instead of its bounded in-suite size.

It is the same test, with the same world, strategies and verdicts: fresh
hypothesis runs (``--examples`` each) follow one another until the time is
spent; each failure is shrunk, recorded and the run goes on, so one run can
report several distinct failures. At the end it prints the number of runs,
examples and requests, the status histogram, and every failure, and exits 1
when there was any.

    .venv/bin/python benchmarks/fuzz_api.py                 # 5 minutes, SQLite
    .venv/bin/python benchmarks/fuzz_api.py --seconds 60
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/fuzz_api.py
    .venv/bin/python benchmarks/fuzz_api.py --gunicorn      # over HTTP through gunicorn and replay

``--gunicorn`` runs ``tests/security/test_fuzz_gunicorn.py::test_fuzz_through_gunicorn``
instead: the same strategies sent over HTTP to istore under gunicorn (2
workers, processed results not cached, so repeated GETs are replayed and
recomputed), with the same report.

Record the outcome in docs/security.md ("Fuzzing").
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/security/test_fuzz_api.py::test_fuzz_http_api"
GUNICORN_TEST = "tests/security/test_fuzz_gunicorn.py::test_fuzz_through_gunicorn"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to fuzz (default 300)")
    parser.add_argument("--examples", type=int, default=500, help="examples per hypothesis run (default 500)")
    parser.add_argument("--gunicorn", action="store_true", help="fuzz over HTTP through gunicorn and replay")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="istore-fuzz-") as temp:
        report = Path(temp) / "report.json"
        env = dict(os.environ, ISTORE_FUZZ_SECONDS=str(args.seconds), ISTORE_FUZZ_EXAMPLES=str(args.examples),
                   ISTORE_FUZZ_REPORT=str(report))
        started = time.monotonic()
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                   GUNICORN_TEST if args.gunicorn else TEST,
                   "-W", "ignore::hypothesis.errors.HypothesisWarning"]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if not report.exists():
            sys.stdout.write(result.stdout[-20000:] + result.stderr[-5000:])
            print(f"\nThe fuzz test did not finish (exit {result.returncode}).")
            return 2
        data = json.loads(report.read_text())

    stats = data["stats"]
    statuses = {key.split()[1]: value for key, value in stats.items() if key.startswith("status ")}
    requests = stats.get("requests", 0)
    print(f"fuzz_api: {elapsed:.0f} s wall, {data['seconds']:.0f} s fuzzing, {stats.get('runs', 0)} hypothesis runs, "
          f"{stats.get('examples', 0)} examples, {requests} requests "
          f"({requests / max(data['seconds'], 1e-9):.0f}/s), {len(data['failures'])} failures")
    print("statuses: " + ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items())))
    applied = {key: value for key, value in stats.items() if key.startswith("apply=")}
    ok = sum(value for key, value in applied.items() if key.endswith(" 200"))
    print(f"processing requests: {sum(applied.values())} ({ok} answered 200)")
    for index, failure in enumerate(data["failures"], 1):
        print(f"\n--- failure {index}\n{failure}")
    return 1 if data["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
