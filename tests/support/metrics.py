"""Reading what the named metrics (functions/ops/metrics.py) recorded into an in-memory reader."""

from __future__ import annotations


def points(reader) -> dict[str, list]:
    """Metric name -> its data points, from an OpenTelemetry SDK InMemoryMetricReader."""
    out: dict[str, list] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out
