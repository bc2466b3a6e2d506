"""``GET /console/``: a page for trying a session in a browser, built on the client library.

The page (chat/console/) is plain HTML, CSS and an ES module that imports
``/client/dashboard-ai-client.js`` from this server: no build step, no framework, nothing
fetched from another origin. It is served as the client library is (read once at import,
``no-cache`` with the SHA-256 as ETag), plus a Content-Security-Policy of its own: only this
origin's scripts, styles and sockets, no inline script, no framing. The page shows model text
and file contents as text only, but the policy keeps a slip there from running anything.
Its WebSocket still passes the handshake's ``Origin`` check: the console's origin must be in
``CORS_ORIGIN`` (``DEMO_MODEL=1 bin/serve`` adds it).
"""

from __future__ import annotations

from pathlib import Path

from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from chat.api.bundled_files import BundledFiles

#: The files served under /console/ ("" is the page itself), with their media types.
CONSOLE_FILES = BundledFiles(
    Path(__file__).resolve().parent.parent / "console",
    {
        "": ("index.html", "text/html; charset=utf-8"),
        "console.js": ("console.js", "text/javascript; charset=utf-8"),
        "console.css": ("console.css", "text/css; charset=utf-8"),
    },
)
#: 'self' in connect-src covers ws:/wss: to this host and port (CSP Level 3).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@csrf_exempt  # it reads no cookie; other methods get a 405, not a CSRF 403
async def console_file(request: HttpRequest, name: str) -> HttpResponseBase:
    """One file of the console page, with the page's Content-Security-Policy."""
    response = CONSOLE_FILES.response(request, name)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
