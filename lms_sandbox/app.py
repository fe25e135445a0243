"""App factory: the LMS API behind the gate, plus the control API.

The LMS (docs/lms-contract.md) is at `/org/<org>/api/v1/...`, every request through
`gate.Gate`; the control API (control.py) is at `/_sandbox/...`.
"""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging.config import LoggingConfig

from .config import SandboxConfig
from .control import CONTROL_HANDLERS
from .errors import exception_handlers
from .gate import Gate, quiet_dropped_connections
from .routes import LMS_DEPENDENCIES, LMS_HANDLERS
from .state import Sandbox

__all__ = ["create_app"]


def create_app(config: SandboxConfig | None = None, *, sandbox: Sandbox | None = None) -> Litestar:
    """Build a sandbox app with its own state; config from the environment when not given.

    Pass `sandbox` to keep a handle on the state from the test (it is also
    at `app.state.sandbox`).
    """
    if sandbox is None:
        sandbox = Sandbox(config if config is not None else SandboxConfig.from_env())

    def provide_sandbox() -> Sandbox:
        return sandbox

    lms = Router(
        path="/org/{org:str}/api/v1",
        route_handlers=LMS_HANDLERS,
        dependencies=LMS_DEPENDENCIES,
        middleware=[Gate(sandbox)],
    )
    control = Router(path="/_sandbox", route_handlers=CONTROL_HANDLERS)
    return Litestar(
        route_handlers=[lms, control],
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False, use_cache=True)},
        exception_handlers=exception_handlers(),
        on_startup=[quiet_dropped_connections],
        openapi_config=None,
        # Leave the root logger to the host process (uvicorn, pytest); errors.py logs crashes.
        logging_config=LoggingConfig(configure_root_logger=False),
        state=State({"sandbox": sandbox}),
    )
