"""The JSON error answers of the HTTP side: one body shape, ``{"code", "message"}``.

Every answer of this server is JSON: besides the sessions API and ``/health``, Django's
error handlers (wired in ``dashboard_ai.urls`` and ``CSRF_FAILURE_VIEW``) answer with
these bodies instead of HTML pages (docs/protocol.md, "HTTP errors"). With ``DEBUG`` on,
Django shows its own debug pages instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.http import HttpRequest, JsonResponse


def error_response(*, status: int, code: str, message: str) -> JsonResponse:
    """The JSON body of every API error."""
    return JsonResponse({"code": code, "message": message}, status=status)


def method_not_allowed(methods: Sequence[str]) -> JsonResponse:
    """The 405 of an address that answers only ``methods`` (listed in ``Allow``)."""
    response = error_response(
        status=405,
        code="METHOD_NOT_ALLOWED",
        message=f"Use {' or '.join(methods)} on this address.",
    )
    response["Allow"] = ", ".join(methods)
    return response


def bad_request(request: HttpRequest, exception: Exception) -> JsonResponse:
    """``handler400``: a malformed request, or a ``Host`` not in ``ALLOWED_HOSTS``."""
    return error_response(
        status=400,
        code="BAD_REQUEST",
        message="The server cannot answer this request (is its Host allowed?).",
    )


def permission_denied(request: HttpRequest, exception: Exception) -> JsonResponse:
    """``handler403``."""
    return error_response(status=403, code="FORBIDDEN", message="This request is not allowed.")


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    """``CSRF_FAILURE_VIEW``: a view that is not CSRF exempt refused a cross-site request."""
    return error_response(
        status=403, code="FORBIDDEN", message="This request failed the cross-site request check."
    )


def page_not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    """``handler404``: an address the server does not serve."""
    return error_response(
        status=404, code="NOT_FOUND", message="Nothing is served at this address."
    )


def server_error(request: HttpRequest) -> JsonResponse:
    """``handler500``: an unexpected failure (Django has logged the traceback)."""
    return error_response(
        status=500, code="INTERNAL", message="The server failed; details are in its log."
    )
