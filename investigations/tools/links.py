"""Grafana Explore links that open the same query over the same range."""

import json
from urllib.parse import urlencode

from django.conf import settings

DATASOURCE_TYPES = {"loki": "loki", "prometheus": "prometheus"}


def explore_link(backend, query, start, end):
    """The Explore URL for `query` on `backend` ("loki" or "prometheus"), or None.

    None when ROOTLINE_GRAFANA_URL or the backend's datasource UID is not configured.
    """
    uid = {
        "loki": settings.ROOTLINE_GRAFANA_LOKI_UID,
        "prometheus": settings.ROOTLINE_GRAFANA_PROMETHEUS_UID,
    }[backend]
    if not settings.ROOTLINE_GRAFANA_URL or not uid:
        return None
    datasource = {"type": DATASOURCE_TYPES[backend], "uid": uid}
    pane = {
        "datasource": uid,
        "queries": [{"refId": "A", "expr": query, "datasource": datasource}],
        "range": {
            "from": str(int(start.timestamp() * 1000)),
            "to": str(int(end.timestamp() * 1000)),
        },
    }
    params = {
        "schemaVersion": "1",
        "panes": json.dumps({"rootline": pane}, separators=(",", ":")),
        "orgId": str(settings.ROOTLINE_GRAFANA_ORG_ID),
    }
    return f"{settings.ROOTLINE_GRAFANA_URL}/explore?{urlencode(params)}"
