"""Sandbox configuration: the organisations and the knobs that make it misbehave.

`Knobs` are the settings that the control API can change while the sandbox
runs (`PUT /_sandbox/knobs`); `SandboxConfig` is the start-up value: the knobs
plus the organisations and their API keys. Both are validated by msgspec, so a
bad environment variable fails at start-up instead of at the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

__all__ = [
    "FaultStatus",
    "Knobs",
    "KnobsUpdate",
    "SandboxConfig",
    "auto_org_key",
    "parse_orgs",
]

FaultStatus = Literal[502, 503, 504]
Share = Annotated[float, Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Meta(ge=0.0)]
Burst = Annotated[int, Meta(ge=1)]
FaultStatuses = Annotated[tuple[FaultStatus, ...], Meta(min_length=1)]


def auto_org_key(org: str) -> str:
    """The API key that auto-creates `org` when `auto_orgs` is on (keeps the quick start simple)."""
    return f"sandbox-key-{org}"


class Knobs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the sandbox does to its callers; changeable at run time.

    `rate` is the token refill per second of each API key's bucket (0 turns
    rate limiting off) and `burst` its size. `fault_rate` and
    `drop_after_write_rate` are shares from 0 to 1. `outage_until` is a Unix
    timestamp: until then every LMS request answers 503.
    """

    latency_ms: NonNegative = 0.0
    latency_jitter_ms: NonNegative = 0.0
    rate: NonNegative = 20.0
    burst: Burst = 40
    fault_rate: Share = 0.0
    fault_statuses: FaultStatuses = (502, 503, 504)
    drop_after_write_rate: Share = 0.0
    outage_until: float | None = None
    seed: int | None = None
    auto_orgs: bool = False


class SandboxConfig(Knobs, kw_only=True, forbid_unknown_fields=True):
    """Start-up configuration: the knobs plus organisation name -> API key."""

    orgs: dict[str, str] = msgspec.field(default_factory=dict)

    def knobs(self) -> Knobs:
        """A fresh, mutable copy of the knobs this config starts with."""
        return Knobs(**{name: getattr(self, name) for name in Knobs.__struct_fields__})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """Build the config from `SANDBOX_*` variables; unset ones keep their defaults.

        Raises ValueError naming the variable when a value is malformed.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        if orgs := env.get("SANDBOX_ORGS", "").strip():
            raw["orgs"] = parse_orgs(orgs)
        numbers = {
            "SANDBOX_LATENCY_MS": "latency_ms",
            "SANDBOX_LATENCY_JITTER_MS": "latency_jitter_ms",
            "SANDBOX_RATE": "rate",
            "SANDBOX_FAULT_RATE": "fault_rate",
            "SANDBOX_DROP_RATE": "drop_after_write_rate",
        }
        for var, field in numbers.items():
            if value := env.get(var, "").strip():
                raw[field] = _parse(var, value, float)
        integers = {"SANDBOX_BURST": "burst", "SANDBOX_SEED": "seed"}
        for var, field in integers.items():
            if value := env.get(var, "").strip():
                raw[field] = _parse(var, value, int)
        auto = env.get("SANDBOX_AUTO_ORGS", "").strip().lower()
        if auto:
            raw["auto_orgs"] = auto in {"1", "true", "yes", "on"}
        try:
            return msgspec.convert(raw, cls)
        except msgspec.ValidationError as exc:
            # msgspec names the field (`$.fault_rate`); name the variable instead.
            field = str(exc).rpartition("$.")[2].split("[")[0].strip("`")
            var = next((v for v, f in {**numbers, **integers}.items() if f == field), "SANDBOX_*")
            raise ValueError(f"{var}: {exc}") from exc


class KnobsUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `PUT /_sandbox/knobs`: any subset of the knobs.

    `outage_seconds` starts an outage now for that many seconds (0 ends one).
    """

    latency_ms: NonNegative | UnsetType = UNSET
    latency_jitter_ms: NonNegative | UnsetType = UNSET
    rate: NonNegative | UnsetType = UNSET
    burst: Burst | UnsetType = UNSET
    fault_rate: Share | UnsetType = UNSET
    fault_statuses: FaultStatuses | UnsetType = UNSET
    drop_after_write_rate: Share | UnsetType = UNSET
    outage_until: float | UnsetType | None = UNSET
    outage_seconds: NonNegative | UnsetType = UNSET
    seed: int | UnsetType | None = UNSET
    auto_orgs: bool | UnsetType = UNSET


def parse_orgs(text: str) -> dict[str, str]:
    """Parse `acme:key1,globex:key2` into {"acme": "key1", "globex": "key2"}."""
    orgs: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        org, sep, key = item.strip().partition(":")
        if not sep or not org or not key or "/" in org:
            raise ValueError(f"SANDBOX_ORGS: expected 'org:api_key', got {item.strip()!r}")
        orgs[org] = key
    return orgs


def _parse(var: str, value: str, kind: type[float] | type[int]) -> float:
    try:
        return kind(value)
    except ValueError as exc:
        raise ValueError(f"{var}: expected {kind.__name__}, got {value!r}") from exc
