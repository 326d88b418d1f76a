"""``otel_config``: the MeshAgent docs' telemetry set-up line, offline.

``meshagent.otel.otel_config(service_name=...)`` exports logs and traces with OpenTelemetry.
There is nowhere to export to offline, so this stand-in only sends logs to stderr, which
is where ``localmesh service run`` and the service logs pick them up.
"""

from __future__ import annotations

import logging
import os
from typing import Any


def otel_config(*, service_name: str | None = None, **_options: Any) -> None:
    """Log at ``OTEL_PYTHON_LOG_LEVEL`` (default INFO) to stderr, once per process."""
    level = os.environ.get("OTEL_PYTHON_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format=f"%(asctime)s %(levelname)s {service_name or 'service'} %(name)s: %(message)s",
    )
