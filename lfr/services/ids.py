from __future__ import annotations

import uuid


def new_id(prefix: str) -> str:
    """Random ids leak nothing (no camera, time or person) and need no coordination between replicas."""
    return f"{prefix}_{uuid.uuid4().hex}"
