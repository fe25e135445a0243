"""Running the real `scim-bridge` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

Run = Callable[..., subprocess.CompletedProcess[str]]


def bridge_env(**extra: str) -> dict[str, str]:
    """The environment without any of the bridge's own settings (but the
    sealing key every deployment has), plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKER_", "SANDBOX_", "BRIDGE_", "API_"))
        and k not in ("REDIS_URL", "QUEUE_REDIS_URL", "PORT", "HOST", "LOG_LEVEL")
    }
    env.update(PYTHONDONTWRITEBYTECODE="1", BRIDGE_SECRET_KEY=os.environ["BRIDGE_SECRET_KEY"])
    env.update(extra)
    return env
