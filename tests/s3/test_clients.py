"""The AWS CLI, rclone and s3fs against the S3 listener of a real server (boto3 has test_boto3.py)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import unavailable

from .conftest import ACCESS_KEY, REGION, SECRET_KEY


def tool(name):
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        unavailable(f"{name} is not installed (.ci/run installs it)")
    return found


def runner(name, env):
    """``run(*args)``: the tool ``name`` with ``env``; its stdout, or a failure with its stderr."""
    binary = tool(name)

    def run(*args):
        done = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{name} {' '.join(args)} exited {done.returncode}: {done.stderr[-1500:]}"
        return done.stdout

    return run


def tree(root, files):
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


FILES = {"a.txt": b"alpha", "sub/b.bin": os.urandom(3000), "sub/deeper/c d.txt": b"gamma"}


@pytest.fixture
def aws(s3_server, tmp_path):
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
           "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_ENDPOINT_URL": s3_server.endpoint}
    return runner("aws", env)


def test_aws_cli_cp_sync_ls_rm_and_head_object(aws, bucket, tmp_path):
    source = tree(tmp_path / "src", FILES)
    aws("s3", "cp", str(source / "a.txt"), f"s3://{bucket}/one/a.txt")
    aws("s3", "sync", str(source), f"s3://{bucket}/synced/")
    # Lines are "date time size key"; a key may hold spaces.
    listed = sorted(line.split(maxsplit=3)[3] for line in aws("s3", "ls", "--recursive", f"s3://{bucket}/").splitlines())
    assert listed == sorted(["one/a.txt"] + [f"synced/{name}" for name in FILES]), listed
    back = tmp_path / "back"
    aws("s3", "sync", f"s3://{bucket}/synced/", str(back))
    for name, data in FILES.items():
        assert (back / name).read_bytes() == data, f"{name} came back different"
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "one/a.txt"))
    assert head["ContentLength"] == 5 and head["ETag"] == '"2c1743a391305fbf367df8e4f069f9f9"', head
    aws("s3", "rm", "--recursive", f"s3://{bucket}/synced/")
    assert "synced" not in aws("s3", "ls", "--recursive", f"s3://{bucket}/"), "rm --recursive left keys"


def test_aws_cli_second_sync_copies_nothing(aws, bucket, tmp_path):
    source = tree(tmp_path / "src", FILES)
    aws("s3", "sync", str(source), f"s3://{bucket}/s/")
    assert aws("s3", "sync", str(source), f"s3://{bucket}/s/").strip() == "", "an unchanged tree was copied again"


@pytest.fixture
def rclone(s3_server, tmp_path):
    env = {**os.environ, "RCLONE_CONFIG": str(tmp_path / "rclone.conf"), "RCLONE_CONFIG_ISTORE_TYPE": "s3",
           "RCLONE_CONFIG_ISTORE_PROVIDER": "Other", "RCLONE_CONFIG_ISTORE_ACCESS_KEY_ID": ACCESS_KEY,
           "RCLONE_CONFIG_ISTORE_SECRET_ACCESS_KEY": SECRET_KEY, "RCLONE_CONFIG_ISTORE_ENDPOINT": s3_server.endpoint,
           "RCLONE_CONFIG_ISTORE_REGION": REGION, "RCLONE_CONFIG_ISTORE_FORCE_PATH_STYLE": "true"}
    # rclone's AWS SDK refuses a CA bundle it cannot load even for plain http; the endpoint needs none.
    env.pop("AWS_CA_BUNDLE", None)
    return runner("rclone", env)


def test_rclone_copy_sync_check_lsjson(rclone, bucket, tmp_path):
    source = tree(tmp_path / "src", FILES)
    rclone("copy", str(source), f"istore:{bucket}/copied")
    rclone("check", str(source), f"istore:{bucket}/copied")
    (source / "a.txt").unlink()
    (source / "new.txt").write_bytes(b"new")
    rclone("sync", str(source), f"istore:{bucket}/copied")
    listed = json.loads(rclone("lsjson", "--recursive", "--files-only", f"istore:{bucket}/copied"))
    assert sorted(entry["Path"] for entry in listed) == ["new.txt", "sub/b.bin", "sub/deeper/c d.txt"], listed
    rclone("check", str(source), f"istore:{bucket}/copied")


def test_s3fs_open_ls_glob(s3_server, s3, bucket):
    s3fs = pytest.importorskip("s3fs") if os.environ.get("CI") != "true" else __import__("s3fs")
    for name, data in FILES.items():
        s3.put_object(Bucket=bucket, Key=f"fs/{name}", Body=data)
    fs = s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, client_kwargs={"endpoint_url": s3_server.endpoint,
                                                                             "region_name": REGION})
    with fs.open(f"{bucket}/fs/sub/b.bin", "rb") as handle:
        assert handle.read() == FILES["sub/b.bin"], "s3fs read different bytes"
    assert sorted(fs.ls(f"{bucket}/fs")) == [f"{bucket}/fs/a.txt", f"{bucket}/fs/sub"], fs.ls(f"{bucket}/fs")
    assert fs.glob(f"{bucket}/fs/**/*.txt") == [f"{bucket}/fs/a.txt", f"{bucket}/fs/sub/deeper/c d.txt"]
    with fs.open(f"{bucket}/fs/written.txt", "wb") as handle:
        handle.write(b"through s3fs")
    assert s3.get_object(Bucket=bucket, Key="fs/written.txt")["Body"].read() == b"through s3fs"
