"""``GET /metrics``: the Prometheus exposition of :mod:`chat.metrics`, by ``METRICS_MODE``.

``token``: served here to a request with ``Authorization: Bearer <METRICS_TOKEN>``
(compared in constant time), 401 otherwise. ``off`` and ``port`` (served on a port of
its own, :func:`chat.metrics.serve_on_port`): a 404 here, as for any unknown address.
The mode is read per request, so the route is always there and answers as configured.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from chat import metrics
from chat.api.errors import error_response, method_not_allowed
from chat.auth import bearer_token

METRICS_METHODS = ("GET", "HEAD")


@csrf_exempt  # it reads no cookie; other methods get the 405 below
async def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus' text format, to a caller with the metrics token."""
    if settings.METRICS_MODE != "token":
        raise Http404
    if request.method not in METRICS_METHODS:
        return method_not_allowed(METRICS_METHODS)
    presented, expected = bearer_token(request) or "", settings.METRICS_TOKEN
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        response = error_response(
            status=401, code="UNAUTHORIZED", message="Send the metrics token as a Bearer token."
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)
