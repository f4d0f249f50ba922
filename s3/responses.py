"""S3 answers: XML documents, empty answers, and the error document."""
from django.http import HttpResponse

from . import documents
from .errors import S3Error

XML_TYPE = "application/xml"


def xml(element, status=200, headers=None):
    body = documents.serialize(element)
    response = HttpResponse(body, status=status, content_type=XML_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def empty(status=200, headers=None):
    response = HttpResponse(b"", status=status)
    del response["Content-Type"]
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error(exc: S3Error, resource, request_id, method):
    """S3's error document for ``exc`` (headers only for HEAD, as S3 answers)."""
    fields = [("Code", exc.code), ("Message", exc.message), *exc.fields.items(), ("Resource", resource),
              ("RequestId", request_id)]
    if method == "HEAD":
        response = empty(exc.status, exc.headers)
        response["Content-Type"] = XML_TYPE
        return response
    return xml(documents.document("Error", fields, namespace=False), exc.status, exc.headers)
