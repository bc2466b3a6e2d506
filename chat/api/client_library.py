"""``GET /client/<file>``: the browser client library (chat/client/), served by the backend.

A frontend loads the module from the server it talks to, so the library always matches the
protocol that server speaks. It is public code (no secret, no session), hence no token. The
address has no version in it, so browsers revalidate on every load (``no-cache``) and get a
304 while the ETag, the file's SHA-256, is unchanged. The files are read once, at import:
they change only with a deploy, which restarts the server, and the event loop never waits
on a disk read for them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import get_conditional_response
from django.views.decorators.csrf import csrf_exempt

from chat.api.errors import method_not_allowed

CLIENT_DIR = Path(__file__).resolve().parent.parent / "client"
CLIENT_METHODS = ("GET", "HEAD")
#: The files served, with their media types (a module needs a JavaScript type under nosniff).
CLIENT_FILES = {
    "dashboard-ai-client.js": "text/javascript; charset=utf-8",
    "dashboard-ai-client.d.ts": "application/typescript; charset=utf-8",
}
#: Each file's bytes and ETag.
BODIES = {
    name: (body, f'"{hashlib.sha256(body).hexdigest()}"')
    for name in CLIENT_FILES
    for body in [(CLIENT_DIR / name).read_bytes()]
}


@csrf_exempt  # it reads no cookie; other methods get the 405 below, not a CSRF 403
async def client_file(request: HttpRequest, name: str) -> HttpResponseBase:
    """One file of the client library; CORS headers come from the middleware, as elsewhere."""
    if request.method not in CLIENT_METHODS:
        return method_not_allowed(CLIENT_METHODS)
    body, etag = BODIES[name]
    not_modified = get_conditional_response(request, etag=etag)
    response = not_modified or HttpResponse(body, content_type=CLIENT_FILES[name])
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response
