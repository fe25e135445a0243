"""Run the sandbox under uvicorn (the `scim-bridge sandbox` command and `python -m lms_sandbox`)."""

from __future__ import annotations

import os

import uvicorn

from .app import create_app
from .config import SandboxConfig

__all__ = ["DEFAULT_PORT", "serve"]

DEFAULT_PORT = 8100


def serve(
    host: str | None = None,
    port: int | None = None,
    config: SandboxConfig | None = None,
    *,
    access_log: bool = False,
) -> None:
    """Serve until interrupted; unset arguments come from SANDBOX_HOST, SANDBOX_PORT, SANDBOX_*.

    The access log is off by default: at benchmark rates it costs more than the sandbox.
    """
    host = host or os.environ.get("SANDBOX_HOST", "127.0.0.1")
    port = port if port is not None else int(os.environ.get("SANDBOX_PORT", DEFAULT_PORT))
    app = create_app(config if config is not None else SandboxConfig.from_env())
    uvicorn.run(app, host=host, port=port, ws="none", lifespan="on", access_log=access_log)
