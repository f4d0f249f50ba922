"""Environment for the test run: safe local settings, data under a temp dir."""
import os
import tempfile

os.environ.setdefault("SECRET_KEY", "istore-test-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("ISTORE_DATA_DIR", tempfile.mkdtemp(prefix="istore-test-"))
