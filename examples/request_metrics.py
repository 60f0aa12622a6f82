"""Metrics from the ``on_request`` hook: Prometheus text, or OpenTelemetry instruments.

``UphanceClient(on_request=hook)`` calls ``hook(event)`` after every HTTP attempt with a frozen
:class:`uphance_async.RequestEvent` (method, url_path, status, error, elapsed, attempt,
throttled). The hook runs on the event loop, so it must be quick and must not block; one that
raises is logged and ignored. Neither Prometheus nor OpenTelemetry is a dependency of
uphance-async: this file shows both ways, and needs neither to run its Prometheus part.

Run it against the built-in fake server::

    python examples/request_metrics.py
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from uphance_async import RequestEvent, UphanceClient
from uphance_async.testing import FakeUphance

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusMetrics:
    """Counts requests and their latency, and renders Prometheus's text format.

    ``uphance_requests_total{method, path, status}`` counts attempts (``status="error"`` when no
    answer came); ``uphance_request_seconds`` is a latency histogram; ``uphance_retries_total``
    and ``uphance_throttled_total`` count retries and 429s. Serve :meth:`render` at
    ``/metrics``, or feed the same events to ``prometheus_client`` counters instead.
    """

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.buckets: Counter[float] = Counter()
        self.seconds = 0.0
        self.count = 0
        self.retries = 0
        self.throttled = 0

    def __call__(self, event: RequestEvent) -> None:
        status = str(event.status) if event.status is not None else "error"
        self.requests[(event.method, event.url_path, status)] += 1
        self.count += 1
        self.seconds += event.elapsed
        for bound in BUCKETS:
            if event.elapsed <= bound:
                self.buckets[bound] += 1
        self.retries += event.attempt > 1
        self.throttled += event.throttled

    def render(self) -> str:
        """The metrics in Prometheus's text exposition format."""
        lines = ["# TYPE uphance_requests_total counter"]
        for (method, path, status), count in sorted(self.requests.items()):
            labels = f'method="{method}",path="{_label(path)}",status="{status}"'
            lines.append(f"uphance_requests_total{{{labels}}} {count}")
        lines.append("# TYPE uphance_request_seconds histogram")
        for bound in BUCKETS:
            lines.append(f'uphance_request_seconds_bucket{{le="{bound}"}} {self.buckets[bound]}')
        lines += [
            f'uphance_request_seconds_bucket{{le="+Inf"}} {self.count}',
            f"uphance_request_seconds_sum {self.seconds:.6f}",
            f"uphance_request_seconds_count {self.count}",
            "# TYPE uphance_retries_total counter",
            f"uphance_retries_total {self.retries}",
            "# TYPE uphance_throttled_total counter",
            f"uphance_throttled_total {self.throttled}",
        ]
        return "\n".join(lines) + "\n"


def _label(path: str) -> str:
    # One series per endpoint, not per record: ids in the path would explode the cardinality.
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def opentelemetry_hook(meter: Any) -> Any:
    """A hook recording OpenTelemetry metrics on ``meter`` (``metrics.get_meter(...)``).

    Uses only the OpenTelemetry API: a counter ``uphance.requests`` and a histogram
    ``uphance.request.duration`` in seconds, with the HTTP semantic-convention attributes.
    """
    requests = meter.create_counter("uphance.requests", unit="{request}")
    duration = meter.create_histogram("uphance.request.duration", unit="s")

    def hook(event: RequestEvent) -> None:
        attributes = {
            "http.request.method": event.method,
            "url.template": _label(event.url_path),
            "http.response.status_code": event.status or 0,
            "uphance.attempt": event.attempt,
        }
        if event.error is not None:
            attributes["error.type"] = type(event.error).__name__
        requests.add(1, attributes)
        duration.record(event.elapsed, attributes)

    return hook


async def main() -> None:
    metrics = PrometheusMetrics()
    async with FakeUphance(customers=2000, fault_rate=0.3, faults=("503",)) as server:
        client = UphanceClient(token=server.token, base_url=server.url, on_request=metrics)
        async with client:
            async for _ in client.customers.stream(status="all"):
                pass
            await client.customers.get(server.ids()[0])
    print(metrics.render(), end="")


if __name__ == "__main__":
    asyncio.run(main())
