"""
The read pipeline: from a registered item to the bytes served.

Uploaded content is served from storage; keys with an embedded source are
answered by the sources layer (next step of the project: 501 until then).
"""
from datetime import timezone as dt_timezone

from istore_site.errors import ApiError, NotFound

from . import content, responses


def serve(request, item):
    if item.has_content:
        return responses.content_response(
            request,
            lambda: content.open_content(item.content_name),
            size=item.content_size,
            content_type=item.content_type,
            etag=item.content_etag,
            last_modified=item.updated.astimezone(dt_timezone.utc),
        )
    from . import keys

    if keys.parse_key(item.key).source is not None:
        raise ApiError("Fetching embedded sources is not implemented yet.", status=501, code="not_implemented")
    raise NotFound(f"{item.key!r} is registered but has no content: it holds metadata only (see ?meta=1).",
                   code="no_content")
