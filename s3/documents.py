"""
XML in and out.

Requests (``DeleteObjects``, ``CompleteMultipartUpload``,
``CreateBucketConfiguration``) are parsed by defusedxml with DTDs, entities
and external references forbidden, so an XML bomb or an external entity is
refused at its first declaration: a fast ``MalformedXML``, never an
expansion. Bodies are read up to a bound first (``read_body``).

Responses are built with ElementTree (escaping is its job) in S3's namespace.
"""
import xml.etree.ElementTree as ET
from datetime import timezone

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .errors import S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def read_body(request, limit):
    """The request body, at most ``limit`` bytes (MalformedXML past it)."""
    from objects.payloads import raw_body_reader

    read, _ = raw_body_reader(request)
    data = b""
    while len(data) <= limit:
        chunk = read(min(65536, limit + 1 - len(data)))
        if not chunk:
            return data
        data += chunk
    raise S3Error("MalformedXML", f"The XML body is over {limit} bytes.")


def parse(body, root):
    """The root element of ``body``, namespaces dropped; MalformedXML unless it is ``root``."""
    try:
        element = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise S3Error("MalformedXML", f"The XML you provided was not well-formed or did not validate: {exc}.") \
            from None
    for node in element.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    if element.tag != root:
        raise S3Error("MalformedXML", f"The XML document's root must be <{root}>, not <{element.tag}>.")
    return element


def text(element, name, default=None):
    child = element.find(name)
    return default if child is None or child.text is None else child.text


def document(root, children=(), namespace=True):
    """``root`` with ``children``: (name, value) pairs, where a value is text,
    None (skipped), or a list of pairs (a nested element)."""
    element = ET.Element(root, {"xmlns": NAMESPACE} if namespace else {})
    _append(element, children)
    return element


def _append(parent, children):
    for name, value in children:
        if value is None:
            continue
        child = ET.SubElement(parent, name)
        if isinstance(value, list):
            _append(child, value)
        else:
            child.text = value if isinstance(value, str) else _format(value)


def _format(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "astimezone"):
        return timestamp(value)
    return str(value)


def timestamp(moment):
    """S3's ISO 8601 form with milliseconds: 2026-01-31T10:00:00.123Z."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def serialize(element):
    return DECLARATION + ET.tostring(element, encoding="utf-8", xml_declaration=False)
