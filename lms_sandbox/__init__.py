"""A runnable in-memory LMS that follows docs/lms-contract.md, with knobs for latency,
rate limits and faults.

For end-to-end tests, benchmarks and the quick start; the bridge never
imports it. Start it with `serve()` (or `python -m lms_sandbox`), or build
the app with `create_app(SandboxConfig(...))` for an in-process test.
"""

from .app import create_app
from .config import Knobs, KnobsUpdate, SandboxConfig, auto_org_key
from .server import DEFAULT_PORT, serve
from .state import Sandbox

__all__ = [
    "DEFAULT_PORT",
    "Knobs",
    "KnobsUpdate",
    "Sandbox",
    "SandboxConfig",
    "auto_org_key",
    "create_app",
    "serve",
]
