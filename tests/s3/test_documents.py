"""XML requests: bombs and external entities are a fast MalformedXML; bad documents a clear 400."""
import time

import pytest

from s3 import documents
from s3.errors import S3Error

from .conftest import error_code, signed_request

BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                   for i in range(1, 10))
        + b']><Delete><Object><Key>&lol9;</Key></Object></Delete>')
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<Delete><Object><Key>&x;</Key></Object></Delete>")


@pytest.mark.parametrize("body", [BOMB, EXTERNAL, b"<Delete><Object>", b"not xml", b"<Other/>", b""])
def test_bad_documents_are_malformed_xml(body):
    with pytest.raises(S3Error) as raised:
        documents.parse(body, "Delete")
    assert raised.value.code == "MalformedXML", f"{body[:30]!r} gave {raised.value.code}"


def test_namespaced_document_parses():
    root = documents.parse(b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet></Delete>',
                           "Delete")
    assert documents.text(root, "Quiet") == "true", "the S3 namespace was not dropped"


@pytest.mark.parametrize("path", ["?delete", "/mp?uploadId=x"])
def test_bomb_over_http_is_a_fast_400(s3_server, bucket, path):
    method = "POST"
    started = time.monotonic()
    answer = signed_request(s3_server, method, f"/{bucket}{path}", body=BOMB)
    assert answer.status_code in (400, 404), f"an XML bomb answered {answer.status_code}"
    assert error_code(answer) in ("MalformedXML", "NoSuchUpload"), answer.content
    assert time.monotonic() - started < 10, "the bomb was expanded"


def test_delete_objects_bomb_is_malformed_xml(s3_server, bucket):
    answer = signed_request(s3_server, "POST", f"/{bucket}?delete", body=BOMB)
    assert (answer.status_code, error_code(answer)) == (400, "MalformedXML"), answer.content


def test_too_many_objects_in_one_delete(s3_server, bucket):
    body = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>"
    answer = signed_request(s3_server, "POST", f"/{bucket}?delete", body=body)
    assert (answer.status_code, error_code(answer)) == (400, "MalformedXML"), answer.content
