"""Reading a live server's ``GET /metrics`` (``METRICS_MODE=token``) as Prometheus would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.live import LiveServer

METRICS_TOKEN = "metrics-e2e-token-0123456789abcdef"
#: The settings of a server whose metrics a test scrapes.
METRICS_ENV = {"METRICS_MODE": "token", "METRICS_TOKEN": METRICS_TOKEN}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: LiveServer) -> tuple[str, Samples]:
    """The exposition's text and its samples, by name and sorted labels."""
    status, body = server.fetch("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200
    text = body.decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


class Scrape:
    """A server's metrics when made, and how far they moved since."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        _, self.before = scrape(server)

    def moved(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        _, now = scrape(self.server)
        return now.get(key, 0.0) - self.before.get(key, 0.0)

    def refusals(self) -> dict[str, float]:
        """How far each reason of ``dashboard_ai_refusals_total`` moved."""
        _, now = scrape(self.server)
        return {
            dict(labels)["reason"]: value - self.before.get((name, labels), 0.0)
            for (name, labels), value in now.items()
            if name == "dashboard_ai_refusals_total"
        }
