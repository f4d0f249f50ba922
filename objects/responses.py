"""
JSON answers of the API: bodies, and errors as ``{"error": code, "detail":
text}``. Content responses (bytes with ETag, 304, Range) are made by
``objects.serving``.
"""
from django.http import HttpResponse

from . import jsontext
from .errors import ApiError


def json_response(data, status=200, headers=None):
    body = jsontext.dumps(data).encode("utf-8")
    response = HttpResponse(body, status=status, content_type="application/json")
    response["Content-Length"] = str(len(body))
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_response(error: ApiError):
    return json_response(error.as_dict(), status=error.status, headers=error.headers)


def error(status, code, detail, headers=None):
    return json_response({"error": code, "detail": detail}, status=status, headers=headers)
