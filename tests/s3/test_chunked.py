"""aws-chunked bodies: chunk signatures (AWS's published example), trailers, and both through a real server."""
import base64
import hashlib
import hmac
import io
import zlib

import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from s3 import auth
from s3.chunked import ChunkedReader
from s3.errors import S3Error

from .conftest import ACCESS_KEY, REGION, SECRET_KEY, error_code, signed_request

# AWS's worked example of STREAMING-AWS4-HMAC-SHA256-PAYLOAD (66560 bytes of "a" in chunks of 64 KiB).
EXAMPLE_HEADERS = [("content-encoding", "aws-chunked"), ("content-length", "66824"), ("host", "s3.amazonaws.com"),
                   ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), ("x-amz-date", "20130524T000000Z"),
                   ("x-amz-decoded-content-length", "66560"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")]
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]


def example_identity():
    credentials = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    signer = auth._Signer(credentials, "us-east-1", EXAMPLE_HEADERS)
    request = AWSRequest(method="PUT", url="http://istore/examplebucket/chunkObject.txt",
                         headers={"X-Amz-Content-SHA256": auth.STREAMING_SIGNED})
    request.params = []
    request.context["timestamp"] = "20130524T000000Z"
    seed = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return auth.Identity(None, auth.STREAMING_SIGNED, signer, request, seed, "20130524/us-east-1/s3/aws4_request")


def example_body(signatures=CHUNK_SIGNATURES):
    chunks = [b"a" * 65536, b"a" * 1024, b""]
    return b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(chunk), sig.encode(), chunk)
                    for chunk, sig in zip(chunks, signatures))


def read_all(reader):
    return b"".join(iter(lambda: reader.read(4096), b""))


def test_seed_signature_of_the_published_example():
    assert example_identity().seed_signature == SEED, "the request signature differs from AWS's worked example"


def test_published_example_decodes_with_every_chunk_signature_verified():
    body = example_body()
    reader = ChunkedReader(io.BytesIO(body).read, example_identity(), signed=True)
    assert read_all(reader) == b"a" * 66560, "the decoded bytes differ from the example's payload"


def test_a_wrong_chunk_signature_is_refused():
    body = example_body([CHUNK_SIGNATURES[0], "0" * 64, CHUNK_SIGNATURES[2]])
    reader = ChunkedReader(io.BytesIO(body).read, example_identity(), signed=True)
    with pytest.raises(S3Error) as raised:
        read_all(reader)
    assert raised.value.code == "SignatureDoesNotMatch", "a forged chunk signature was accepted"


def test_unsigned_trailer_body_from_botocore_keeps_its_checksum():
    data = b"trailing checksum body" * 1000
    wrapped = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32",
                                chunk_size=4096)
    reader = ChunkedReader(io.BytesIO(wrapped.read()).read, trailer=True)
    assert read_all(reader) == data, "botocore's aws-chunked framing did not decode to the payload"
    expected = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert reader.trailers == {"x-amz-checksum-crc32": expected}, "the trailing checksum was not read"


@pytest.mark.parametrize("body", [b"zz\r\n", b"5\r\nabc", b"3\r\nabcdef\r\n0\r\n\r\n", b"-1\r\n"])
def test_malformed_framing_is_a_client_error(body):
    with pytest.raises(S3Error) as raised:
        read_all(ChunkedReader(io.BytesIO(body).read))
    assert raised.value.status == 400, f"{body!r} gave {raised.value.status}"


def _signing_key(date):
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (date, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signed_chunks(data, seed, timestamp, chunk=8192, trailer=None, corrupt=False):
    """A reference encoder for STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], from AWS's documentation."""
    scope = f"{timestamp[:8]}/{REGION}/s3/aws4_request"
    key, previous, out = _signing_key(timestamp[:8]), seed, b""
    empty = hashlib.sha256(b"").hexdigest()
    for piece in [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]:
        text = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", timestamp, scope, previous, empty,
                          hashlib.sha256(piece).hexdigest()])
        previous = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        if corrupt and piece:
            piece = piece[:-1] + b"X"
        out += b"%x;chunk-signature=%s\r\n%s" % (len(piece), previous.encode(), piece)
        out += b"\r\n" if piece or trailer is None else b""
    if trailer is not None:
        lines = "".join(f"{name}:{value}\n" for name, value in trailer.items())
        text = "\n".join(["AWS4-HMAC-SHA256-TRAILER", timestamp, scope, previous,
                          hashlib.sha256(lines.encode()).hexdigest()])
        signature = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        out += lines.replace("\n", "\r\n").encode() + f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()
    return out


def _streaming_put(server, path, data, mode, trailer=None, corrupt=False):
    """Sign the headers first (seed signature), then frame the body with chunk signatures chained from it."""
    import requests

    from .conftest import _FixedPayload

    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
    if trailer:
        headers["x-amz-trailer"] = ",".join(trailer)
    request = AWSRequest(method="PUT", url=server.endpoint + path, headers=headers)
    _FixedPayload(Credentials(ACCESS_KEY, SECRET_KEY), mode).add_auth(request)
    seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    body = signed_chunks(data, seed, request.context["timestamp"], trailer=trailer, corrupt=corrupt)
    return requests.put(request.url, data=body, headers=dict(request.headers.items()), timeout=60)


def test_signed_streaming_upload_is_stored_byte_identical(s3_server, bucket, s3):
    data = bytes(range(256)) * 200
    answer = _streaming_put(s3_server, f"/{bucket}/signed.bin", data, auth.STREAMING_SIGNED)
    assert answer.status_code == 200, answer.content
    assert s3.get_object(Bucket=bucket, Key="signed.bin")["Body"].read() == data, "the signed stream was altered"


def test_signed_streaming_upload_with_signed_trailer(s3_server, bucket, s3):
    data = b"signed with a trailer" * 500
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    answer = _streaming_put(s3_server, f"/{bucket}/t.bin", data, auth.STREAMING_SIGNED_TRAILER,
                            trailer={"x-amz-checksum-crc32": crc})
    assert answer.status_code == 200, answer.content
    head = s3.head_object(Bucket=bucket, Key="t.bin", ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC32") == crc, "the trailing CRC32 is not returned with the object"


def test_tampered_signed_stream_stores_nothing(s3_server, bucket):
    before = s3_server.blobs()
    answer = _streaming_put(s3_server, f"/{bucket}/bad.bin", b"x" * 20000, auth.STREAMING_SIGNED, corrupt=True)
    assert error_code(answer) == "SignatureDoesNotMatch", answer.content
    assert s3_server.native("GET", f"/{bucket}/bad.bin?meta=1").status_code == 404, "a tampered body was stored"
    assert s3_server.blobs() == before, "a refused upload left a blob behind"


def test_unsigned_trailer_with_a_wrong_checksum_is_bad_digest(s3_server, bucket):
    data = b"payload"
    body = b"%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n" % (len(data), data)
    answer = signed_request(s3_server, "PUT", f"/{bucket}/crc", body=body, payload_hash=auth.STREAMING_UNSIGNED_TRAILER,
                            headers={"Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
                                     "x-amz-decoded-content-length": str(len(data))})
    assert (answer.status_code, error_code(answer)) == (400, "BadDigest"), answer.content
    assert s3_server.native("GET", f"/{bucket}/crc?meta=1").status_code == 404, "a body with a bad CRC was stored"
