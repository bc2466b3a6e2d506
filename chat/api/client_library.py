"""``GET /client/<file>``: the browser client library (chat/client/), served by the backend.

A frontend loads the module from the server it talks to, so the library always matches the
protocol that server speaks. It is public code (no secret, no session), hence no token.
"""

from __future__ import annotations

from pathlib import Path

from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from chat.api.bundled_files import BundledFiles

#: The files served, with their media types (a module needs a JavaScript type under nosniff).
CLIENT_FILES = BundledFiles(
    Path(__file__).resolve().parent.parent / "client",
    {
        "dashboard-ai-client.js": ("dashboard-ai-client.js", "text/javascript; charset=utf-8"),
        "dashboard-ai-client.d.ts": (
            "dashboard-ai-client.d.ts",
            "application/typescript; charset=utf-8",
        ),
    },
)


@csrf_exempt  # it reads no cookie; other methods get a 405, not a CSRF 403
async def client_file(request: HttpRequest, name: str) -> HttpResponseBase:
    """One file of the client library; CORS headers come from the middleware, as elsewhere."""
    return CLIENT_FILES.response(request, name)
