"""Files that ship with the server and are served as they are (the client library, the
console page): read once at import, revalidated on every load.

Their addresses carry no version, so browsers get ``no-cache`` and a 304 while the ETag,
the file's SHA-256, is unchanged. They change only with a deploy, which restarts the
server, so the event loop never waits on a disk read for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import get_conditional_response

from chat.api.errors import method_not_allowed

METHODS = ("GET", "HEAD")


class BundledFiles:
    """Files of ``folder`` by the name they are served as: ``name -> (file, media type)``."""

    def __init__(self, folder: Path, files: Mapping[str, tuple[str, str]]) -> None:
        self.names = tuple(files)
        self._files: dict[str, tuple[bytes, str, str]] = {}
        for name, (file_name, media_type) in files.items():
            body = (folder / file_name).read_bytes()
            self._files[name] = (body, f'"{hashlib.sha256(body).hexdigest()}"', media_type)

    def response(self, request: HttpRequest, name: str) -> HttpResponseBase:
        """The file ``name``, a 304 when the request's ETag still matches, or a 405."""
        if request.method not in METHODS:
            return method_not_allowed(METHODS)
        body, etag, media_type = self._files[name]
        not_modified = get_conditional_response(request, etag=etag)
        response = not_modified or HttpResponse(body, content_type=media_type)
        response["ETag"] = etag
        response["Cache-Control"] = "no-cache"
        return response
