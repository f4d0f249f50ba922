"""A picture written through the S3 protocol gets its built-in features in the background, as a native upload does."""
import time
from pathlib import Path

PHOTO = Path(__file__).resolve().parents[1] / "fixtures" / "photos" / "chelsea.jpg"


def test_a_put_object_picture_gets_features(s3_server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pets/chelsea.jpg", Body=PHOTO.read_bytes(), ContentType="image/jpeg")
    key = f"/{bucket}/pets/chelsea.jpg"
    deadline = time.monotonic() + 90
    features = None
    while features is None and time.monotonic() < deadline:
        response = s3_server.native("GET", key, params={"meta": "1"})
        assert response.status_code == 200, response.text
        features = response.json().get("_features")
        time.sleep(0.5)
    assert features is not None, "no _features 90 s after the PutObject: the job worker did not compute them"
    assert features["labels"][0]["label"] == "cat", features
