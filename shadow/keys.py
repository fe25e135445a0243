"""The Redis key layout, in one place.

Every key of a tenant starts with the hash tag `{t:<tenant>}` so that all of
one tenant's multi-key steps (Lua scripts, transactions) stay in one slot on
Redis Cluster. The untagged keys are the fleet's: the registry of tenant
slugs and names, of tenants being deleted, the reconcile schedule and the
index of tenants with work (shadow/work.py).
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["u", "g"]

_RESOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Names under a kind's prefix (`{t:x}:u:...`) that are not resources.
RESERVED_IDS = frozenset({"ids", "gone"})


def is_resource_id(text: object) -> bool:
    """True for text that can be a resource id: the bridge hands out UUIDs;
    no id has a `:` or is one of `RESERVED_IDS`.

    Text read from outside (a learner's `external_ref`, a path segment) must
    pass this before it becomes part of a key name: `ids` or `x:groups` would
    otherwise name another of the tenant's keys (docs/architecture.md, invariant 10).
    """
    return (
        isinstance(text, str)
        and _RESOURCE_ID.fullmatch(text) is not None
        and text not in RESERVED_IDS
    )


TENANTS = "scim-bridge:tenants"
#: Hash slug -> when its purge began: tenants being offboarded (shadow/lifecycle.py).
TENANTS_DELETING = "scim-bridge:tenants:deleting"
#: Hash slug -> display name: the admin list's search (shadow/tenants.py).
TENANT_NAMES = "scim-bridge:tenants:names"
#: Sorted set slug -> when its last reconcile was queued (epoch s; 0 never):
#: the reconcile schedule (worker/reconcile.py).
RECONCILE_STARTED = "scim-bridge:reconcile:started"
#: Sorted set slug -> touch count: tenants that may have work (shadow/work.py).
TENANTS_WORK = "scim-bridge:tenants:work"
#: Every untagged key of the store: the fleet's, naming tenants as members only.
FLEET = (TENANTS, TENANTS_DELETING, TENANT_NAMES, RECONCILE_STARTED, TENANTS_WORK)


def credential_changes(db: int) -> str:
    """Pub/sub channel of credential changes (tenant saved, token revoked) of
    the deployment on database `db`: channels are server-wide, and another
    deployment on another database of the same Redis must not count as a
    receiver whose acknowledgement (written in its own database) never comes."""
    return f"scim-bridge:tenant-changes:{db}"


def change_acks(nonce: str) -> str:
    """List each API process pushes to once it evicted credential change
    `nonce`; the changing side pops one entry per process."""
    return f"scim-bridge:tenant-changes:acks:{nonce}"


def prefix(tenant: str) -> str:
    return f"{{t:{tenant}}}:"


def tenant_config(tenant: str) -> str:
    return f"{prefix(tenant)}tenant"


def tokens(tenant: str) -> str:
    """Hash token_id -> token record (hash of the secret, created time, label)."""
    return f"{prefix(tenant)}tokens"


def tokens_used(tenant: str) -> str:
    """Hash token_id -> last-used epoch seconds (written at most once a minute)."""
    return f"{prefix(tenant)}tokens:used"


def resource(tenant: str, kind: Kind, rid: str) -> str:
    """Hash: doc (JSON), v (version), created, modified, del, and index fields."""
    return f"{prefix(tenant)}{kind}:{rid}"


def resource_ids(tenant: str, kind: Kind) -> str:
    """Sorted set of live ids scored by creation sequence: stable paging order."""
    return f"{prefix(tenant)}{kind}:ids"


def sequence(tenant: str) -> str:
    return f"{prefix(tenant)}seq"


def unique_index(tenant: str, kind: Kind) -> str:
    """Hash unique key -> id: a user's lower-cased userName (unique, not
    caseExact); a group's externalId (unique, caseExact)."""
    return f"{prefix(tenant)}{kind}:idx:un"


def members(tenant: str, group_id: str) -> str:
    """User ids that are members of a group: a sorted set with every score 0,
    so in id order, read in pages (ZRANGE BYLEX) by a large group's GET."""
    return f"{prefix(tenant)}g:{group_id}:members"


def user_groups(tenant: str, user_id: str) -> str:
    """Set of group ids a user is a member of (the reverse of `members`)."""
    return f"{prefix(tenant)}u:{user_id}:groups"


def external_id_index(tenant: str, kind: Kind, external_id: str) -> str:
    """Set of ids with this externalId (not unique; caseExact). The write
    script builds the same name from the tenant prefix."""
    return f"{prefix(tenant)}{kind}:x:{external_id}"


def display_name_index(tenant: str, display_name: str) -> str:
    """Set of group ids with this lower-cased displayName (built in Lua too)."""
    return f"{prefix(tenant)}g:n:{display_name.lower()}"


def sync_state(tenant: str, user_id: str) -> str:
    """Hash: state, applied_v, learner_id, applied (JSON), error, updated_at."""
    return f"{prefix(tenant)}sync:{user_id}"


def state_set(tenant: str, state: str) -> str:
    """Sorted sets `pending`, `synced`, `failed`: user id -> since (epoch ms)."""
    return f"{prefix(tenant)}state:{state}"


def queued(tenant: str) -> str:
    """Sorted set user id -> due time (ms) of the sync job enqueued for it."""
    return f"{prefix(tenant)}queued"


def vclock(tenant: str) -> str:
    """The tenant's fair-share clock: the due time (ms) of its next sync job."""
    return f"{prefix(tenant)}vclock"


def user_lock(tenant: str, user_id: str) -> str:
    return f"{prefix(tenant)}lock:{user_id}"


def mapping(tenant: str) -> str:
    """The tenant's mapping overrides (JSON)."""
    return f"{prefix(tenant)}mapping"


def followup_users(tenant: str) -> str:
    """Set of users whose team may have changed with a group (membership,
    rename, delete): written in the same step as the group change, drained
    by `worker.rules.drain_group_followups`. The write scripts build the
    same name from the tenant prefix."""
    return f"{prefix(tenant)}followup:users"


def followup_version(tenant: str) -> str:
    """Counter every write of a follow-up bumps: a drain drops what it read
    only if no change wrote follow-ups meanwhile (none is lost)."""
    return f"{prefix(tenant)}followup:v"


def followup_groups(tenant: str) -> str:
    """Set of groups renamed (or given another externalId) whose members
    are still to be re-synced, a page at a time."""
    return f"{prefix(tenant)}followup:groups"


def rules_resync(tenant: str) -> str:
    """Hash: the re-sync of every user after a mapping change (`gen`,
    `after` (the last creation sequence done), `done`, `total`, `state`,
    `started_at`, `finished_at`); see shadow/rules.py."""
    return f"{prefix(tenant)}rules:resync"


def gone_users(tenant: str) -> str:
    """Sorted set user id -> when its delete was applied (ms): deleted users
    whose learners the bridge deactivated, so reconcile can tell them from
    learners it never knew."""
    return f"{prefix(tenant)}u:gone"


def conflict_waiters(tenant: str, holder_id: str) -> str:
    """Set of users failed because user `holder_id` holds what they need (an
    email): re-queued when the holder's next sync ends or it is deleted.
    The finish script builds the same name from the tenant prefix."""
    return f"{prefix(tenant)}conflict:{holder_id}"


def lms_pause(tenant: str) -> str:
    """Hash: why the tenant's deliveries are paused (`reason`, `since`, and
    `key`, a fingerprint of the LMS key that was refused, never the key)."""
    return f"{prefix(tenant)}lms:paused"


def lms_probe(tenant: str) -> str:
    """Set while one job of a paused tenant may try the LMS (expires)."""
    return f"{prefix(tenant)}lms:probe"


def limiter(tenant: str) -> str:
    """GCRA state of the tenant's LMS organisation (theoretical arrival time)."""
    return f"{prefix(tenant)}lms:tat"


def scim_limiter(tenant: str) -> str:
    """GCRA state of the tenant's SCIM request rate at the API (shadow/limits.py)."""
    return f"{prefix(tenant)}scim:tat"


def scan_budget(tenant: str) -> str:
    """GCRA state of the tenant's budget for filter scans at the API (shadow/limits.py)."""
    return f"{prefix(tenant)}scim:scan"


def events(tenant: str, user_id: str) -> str:
    """Capped stream of what happened to one user (the provisioning log)."""
    return f"{prefix(tenant)}events:{user_id}"


def breaker_state(tenant: str) -> str:
    """Hash: tripped, tripped_at, base, base_ms, approved_until_ms, approved_at, cancelled_at."""
    return f"{prefix(tenant)}breaker"


def breaker_config(tenant: str) -> str:
    return f"{prefix(tenant)}breaker:config"


def breaker_window(tenant: str) -> str:
    """Sorted set user id -> when its deactivation was let through (ms)."""
    return f"{prefix(tenant)}breaker:window"


def breaker_held(tenant: str) -> str:
    """Sorted set user id -> when it was held (ms)."""
    return f"{prefix(tenant)}breaker:held"


def breaker_held_versions(tenant: str) -> str:
    """Hash user id -> the shadow version that was held."""
    return f"{prefix(tenant)}breaker:heldv"


def reconcile_lock(tenant: str) -> str:
    return f"{prefix(tenant)}reconcile:lock"


def reconcile_last(tenant: str) -> str:
    """The last finished report (JSON)."""
    return f"{prefix(tenant)}reconcile:last"


def reconcile_progress(tenant: str) -> str:
    """Hash: state (queued|running|done|failed), seen, expected, started_at, updated_at."""
    return f"{prefix(tenant)}reconcile:progress"


def admin_keys(tenant: str) -> str:
    """Hash key_id -> admin key record (digest of the secret, created time, label)."""
    return f"{prefix(tenant)}admin_keys"


def admin_keys_used(tenant: str) -> str:
    """Hash key_id -> last-used time (ISO)."""
    return f"{prefix(tenant)}admin_keys:used"


def charts(tenant: str) -> str:
    """Hash used as a ring of 1,440 one-minute buckets (field `minute % 1440`):
    syncs applied, failures, queue depth and a lag histogram; shadow/charts.py."""
    return f"{prefix(tenant)}charts"


def webhook(tenant: str) -> str:
    """Hash: the tenant's notification webhook (`url`, `secret`, `set_at`)."""
    return f"{prefix(tenant)}webhook"


def webhook_gate(tenant: str, event: str) -> str:
    """Set (with a TTL) after an event of this kind was sent: later ones are
    counted, not sent, until it expires; `<key>:n` holds that count."""
    return f"{prefix(tenant)}webhook:gate:{event}"


def webhook_delivery(tenant: str, delivery_id: str) -> str:
    """Hash: one delivery (event, body, status, attempts, last_error, times)."""
    return f"{prefix(tenant)}webhook:d:{delivery_id}"


def webhook_deliveries(tenant: str) -> str:
    """Sorted set delivery id -> created (ms): the most recent deliveries."""
    return f"{prefix(tenant)}webhook:recent"


def web_session(sid: str) -> str:
    """String (with the session's TTL): a logged-in admin page session is live
    while it exists; logging out deletes it, so a copied cookie stops working."""
    return f"scim-bridge:web:session:{sid}"


def web_flash(sid: str) -> str:
    """List (short TTL): messages (and a just-issued secret) the next page of
    admin page session `sid` shows once, then deletes (api/web/flash.py)."""
    return f"scim-bridge:web:flash:{sid}"
