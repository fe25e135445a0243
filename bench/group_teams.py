"""A 10,000-member team group created in Entra's batch shape: how fast the
learners' teams follow, against the LMS's own bound (members / rate).

Starts the bridge (bench/harness.py), creates `--members` users and waits
until their learners exist, sets the tenant's mapping to take the team
from groups named "Team *", then does what Entra does for a new group:
POST /Groups without members, then PATCH add-members in batches of
`--batch` (Entra sends up to 100 per request). It measures from the first
PATCH to the last learner's team being set (target at most 1.15 x the
bound, like a bulk user create), LMS calls per member (target 1.0: one
PATCH of `team` each) and 429s. Prints a table and one JSON line; never
asserts.

    .venv/bin/python -m bench.group_teams             # 10,000 members at 200/s, 20 ms
    .venv/bin/python -m bench.group_teams --quick     # 1,000 members
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.harness import (
    BenchCluster,
    add_common_args,
    bridge_counts,
    create_users,
    created_count,
    org_stats,
    print_table,
    run_benchmark,
    scim_client,
    verdict,
    wait_for,
)
from mappings import MappingOverrides, TeamFromGroups, encode_overrides
from shadow import keys

TENANT = "groups"
TEAM = "Team Everyone"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(p)
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=100, help="members per Entra PATCH")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="1,000 members: a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.members = 1_000
    return args


async def run(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    tenant = await cluster.add_tenant(TENANT, rate=args.rate, burst=args.burst)
    redis = cluster.redis
    creates = await create_users(
        cluster, TENANT, tenant.token, range(args.members), args.concurrency
    )

    async def learners_exist() -> bool:
        stats = await org_stats(cluster, tenant.org)
        pending = (await bridge_counts(redis, TENANT))["pending"]
        return created_count(stats) >= args.members and pending == 0

    await wait_for(learners_exist, max(120.0, 4 * args.members / args.rate), 0.5)
    overrides = MappingOverrides(team_from_groups=TeamFromGroups(patterns=("Team *",)))
    await redis.set(keys.mapping(TENANT), encode_overrides(overrides))
    await cluster.reset_sandbox()  # count only the group's LMS calls

    member_ids = list(creates.ids.values())
    async with scim_client(cluster, TENANT, tenant.token) as client:
        created = await client.post(
            "/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": TEAM}
        )
        group_id = created.json()["id"]
        started = time.time()
        patch_ms: list[float] = []
        for start in range(0, len(member_ids), args.batch):
            chunk = member_ids[start : start + args.batch]
            sent = time.time()
            answer = await client.patch(
                f"/Groups/{group_id}",
                json={
                    "schemas": [PATCH_OP],
                    "Operations": [
                        {"op": "Add", "path": "members", "value": [{"value": u} for u in chunk]}
                    ],
                },
            )
            patch_ms.append((time.time() - sent) * 1000)
            answer.raise_for_status()
        patches_done = time.time() - started

    async def teams_set() -> bool:
        learners = await cluster.sandbox_learners(tenant.org)
        return bool(sum(1 for lr in learners if lr.get("team") == TEAM) >= args.members)

    bound = args.members / args.rate
    converged = await wait_for(teams_set, max(120.0, 4 * bound), 0.5)
    elapsed = time.time() - started
    stats = await org_stats(cluster, tenant.org)
    calls = int(stats["total"])
    rejected = int(stats["by_status"].get("429", 0))
    patch_ms.sort()
    return {
        "bench": "group_teams",
        "params": {
            "members": args.members,
            "batch": args.batch,
            "rate": args.rate,
            **cluster.spec.describe(),
        },
        "converged": converged,
        "convergence_s": round(elapsed, 2),
        "bound_s": round(bound, 2),
        "ratio": round(elapsed / bound, 3),
        "scim_patches": len(patch_ms),
        "scim_patches_s": round(patches_done, 2),
        "scim_patch_p50_ms": round(patch_ms[len(patch_ms) // 2], 1),
        "scim_patch_p99_ms": round(patch_ms[int(len(patch_ms) * 0.99)], 1),
        "lms_calls": calls,
        "lms_calls_per_member": round(calls / max(1, args.members), 4),
        "lms_calls_by_route": stats["by_route"],
        "lms_429": rejected,
    }


def report(r: dict[str, Any]) -> None:
    p = r["params"]
    print(
        f"\nGroup teams: {p['members']} members added in PATCHes of {p['batch']} "
        f"(Entra's shape); LMS at {p['rate']}/s"
    )
    print_table(
        [
            (
                "time until every team is set",
                f"{r['convergence_s']} s",
                f"bound {r['bound_s']} s",
                "",
            ),
            ("ratio to the bound", f"{r['ratio']}", "<= 1.15", verdict(r["ratio"] <= 1.15)),
            (
                "LMS calls per member",
                f"{r['lms_calls_per_member']}",
                "1.0",
                verdict(r["lms_calls_per_member"] <= 1.0),
            ),
            ("429s", f"{r['lms_429']}", "~0", ""),
            (
                "SCIM member PATCHes",
                f"{r['scim_patches']} in {r['scim_patches_s']} s, "
                f"p50 {r['scim_patch_p50_ms']} ms, p99 {r['scim_patch_p99_ms']} ms",
                "",
                "",
            ),
        ]
    )
    print(f"LMS calls by route: {r['lms_calls_by_route']}")


def main(argv: list[str] | None = None) -> None:
    run_benchmark(parse_args(argv), run, report)


if __name__ == "__main__":
    main()
