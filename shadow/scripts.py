"""Lua scripts: each multi-key change of the shadow store is one atomic step.

All keys a script touches share the tenant's hash tag. A few keys are derived
inside the script from the tenant prefix (index sets named by a value, and
group membership sets); they live in the same slot, so the scripts stay
valid on Redis Cluster.
"""

from __future__ import annotations

# KEYS: 1 doc, 2 ids, 3 seq, 4 unique index, 5 pending, 6 synced, 7 failed,
#       8 sync state, 9 queued, 10 vclock, 11 reverse membership set
# ARGV: 1 id, 2 mode (create|update|delete), 3 expected version or "",
#       4 doc JSON, 5 unique key (lower userName) or "", 6 externalId or "",
#       7 name key (lower displayName) or "", 8 now ISO, 9 now ms,
#       10 fair-share interval ms, 11 track sync "1"/"0", 12 tenant prefix, 13 kind,
#       and, when the queue lives on this Redis, the job to write in the same
#       step: 14 payload, 15 queue key, 16 job key prefix, 17 job id prefix,
#       18 expiry margin ms (all "" without one), 19 the index of tenants
#       with work or "" (on a Cluster), 20 the tenant's slug
# Returns {status, version, created, due_ms, enqueued}; status is ok |
# not_found | exists | version_mismatch | uniqueness.
PUT_RESOURCE = """
local doc, ids, seq, uidx = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, mode, expected = ARGV[1], ARGV[2], ARGV[3]
local prefix, kind = ARGV[12], ARGV[13]
local cur = redis.call('HMGET', doc, 'v', 'del', 'un', 'xid', 'nm', 'created')
local live = cur[1] and cur[2] ~= '1'
if mode == 'create' then
  if cur[1] then return {'exists', cur[1], '', -1, 0} end
else
  if not live then return {'not_found', 0, '', -1, 0} end
  if expected ~= '' and expected ~= cur[1] then
    return {'version_mismatch', cur[1], '', -1, 0}
  end
end
if mode ~= 'delete' and ARGV[5] ~= '' then
  local owner = redis.call('HGET', uidx, ARGV[5])
  if owner and owner ~= id then return {'uniqueness', 0, '', -1, 0} end
end
-- The tenant may have work now (shadow/work.py), in this same step.
if ARGV[19] and ARGV[19] ~= '' then redis.call('ZINCRBY', ARGV[19], 1, ARGV[20]) end
-- Index entries move only when their value changes (most updates keep them).
local keep = mode ~= 'delete'
local same_un = keep and cur[3] == ARGV[5]
local same_xid = keep and cur[4] == ARGV[6]
local same_nm = keep and cur[5] == ARGV[7]
if not same_un and cur[3] and cur[3] ~= '' then redis.call('HDEL', uidx, cur[3]) end
if not same_xid and cur[4] and cur[4] ~= '' then
  redis.call('SREM', prefix .. kind .. ':x:' .. cur[4], id)
end
if not same_nm and cur[5] and cur[5] ~= '' then
  redis.call('SREM', prefix .. kind .. ':n:' .. cur[5], id)
end
local version = tonumber(cur[1] or '0') + 1
local created = cur[6] or ARGV[8]
if mode == 'delete' then
  if ARGV[11] == '1' then
    redis.call('HSET', doc, 'v', version, 'del', '1', 'modified', ARGV[8], 'modified_ms', ARGV[9])
  else
    redis.call('DEL', doc)
  end
  redis.call('ZREM', ids, id)
  local links = KEYS[11]
  local linked
  if kind == 'u' then
    linked = redis.call('SMEMBERS', links)
  else
    linked = redis.call('ZRANGE', links, 0, -1)
  end
  for _, oid in ipairs(linked) do
    if kind == 'u' then
      redis.call('ZREM', prefix .. 'g:' .. oid .. ':members', id)
    else
      redis.call('SREM', prefix .. 'u:' .. oid .. ':groups', id)
      -- Its members' teams may change: a durable follow-up, in this step.
      redis.call('SADD', prefix .. 'followup:users', oid)
    end
  end
  if kind == 'g' and #linked > 0 then redis.call('INCR', prefix .. 'followup:v') end
  redis.call('DEL', links)
else
  if mode == 'create' then
    redis.call('ZADD', ids, redis.call('INCR', seq), id)
  end
  redis.call('HSET', doc, 'doc', ARGV[4], 'v', version, 'del', '0', 'created', created,
    'modified', ARGV[8], 'modified_ms', ARGV[9], 'un', ARGV[5], 'xid', ARGV[6], 'nm', ARGV[7])
  if not same_un and ARGV[5] ~= '' then redis.call('HSET', uidx, ARGV[5], id) end
  if not same_xid and ARGV[6] ~= '' then
    redis.call('SADD', prefix .. kind .. ':x:' .. ARGV[6], id)
  end
  if not same_nm and ARGV[7] ~= '' then
    redis.call('SADD', prefix .. kind .. ':n:' .. ARGV[7], id)
  end
  if kind == 'g' and mode == 'update' and (not same_nm or not same_xid) then
    -- A group renamed (or given another externalId): its members' teams may
    -- change. A durable follow-up in this step; workers page through them.
    redis.call('SADD', prefix .. 'followup:groups', id)
    redis.call('INCR', prefix .. 'followup:v')
  end
end
local due = -1
if ARGV[11] == '1' then
  local now = tonumber(ARGV[9])
  -- The user's provisioning log starts with what SCIM asked (no personal data).
  redis.call('XADD', prefix .. 'events:' .. id, 'MAXLEN', '~', 200, '*',
    'event', 'scim_' .. mode, 'at', ARGV[8], 'version', version)
  redis.call('ZADD', KEYS[5], 'NX', now, id)
  redis.call('ZREM', KEYS[6], id)
  redis.call('ZREM', KEYS[7], id)
  redis.call('HSET', KEYS[8], 'state', 'pending')
  redis.call('HDEL', KEYS[8], 'faults')
  if not redis.call('ZSCORE', KEYS[9], id) then
    local clock = tonumber(redis.call('GET', KEYS[10]) or '0')
    -- Start-time fair queueing: a tenant with no backlog starts at the head
    -- of the shared queue, not behind another tenant's overdue jobs.
    local vnow = now
    if ARGV[15] and ARGV[15] ~= '' then
      local head = redis.call('ZRANGE', ARGV[15], 0, 0, 'WITHSCORES')
      if head[2] and tonumber(head[2]) < vnow then vnow = tonumber(head[2]) end
    end
    due = math.max(vnow, clock)
    redis.call('SET', KEYS[10], due + tonumber(ARGV[10]), 'PX', 86400000)
    redis.call('ZADD', KEYS[9], due, id)
    if ARGV[14] and ARGV[14] ~= '' then
      local job_id = ARGV[17] .. due
      local ttl = math.max(due - now, 0) + tonumber(ARGV[18])
      redis.call('SET', ARGV[16] .. job_id, ARGV[14], 'PX', ttl, 'NX')
      redis.call('ZADD', ARGV[15], due, job_id)
      return {'ok', version, created, due, 1}
    end
  end
end
return {'ok', version, created, due, 0}
"""

# Mark one user pending and queued again (replay, sweep, group changes).
# KEYS: 1 doc, 2 pending, 3 synced, 4 failed, 5 sync state, 6 queued, 7 vclock
# ARGV: 1 id, 2 now ms, 3 interval ms, 4 "force" to re-queue even if queued,
#       5 "bump" to give the user a new version (its groups changed: a sync
#       pass already running must not record the old teams as current),
#       6 the index of tenants with work or "" (on a Cluster), 7 the slug
# Returns due ms, or -1 when already queued, or -2 when the user is gone.
REQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
if ARGV[6] ~= '' then redis.call('ZINCRBY', ARGV[6], 1, ARGV[7]) end
local id, now = ARGV[1], tonumber(ARGV[2])
if ARGV[5] == 'bump' and redis.call('HGET', KEYS[1], 'del') ~= '1' then
  redis.call('HINCRBY', KEYS[1], 'v', 1)
end
redis.call('ZADD', KEYS[2], 'NX', now, id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('HSET', KEYS[5], 'state', 'pending', 'applied_v', '0')
if ARGV[4] ~= 'force' and redis.call('ZSCORE', KEYS[6], id) then return -1 end
local clock = tonumber(redis.call('GET', KEYS[7]) or '0')
local due = math.max(now, clock)
redis.call('SET', KEYS[7], due + tonumber(ARGV[3]), 'PX', 86400000)
redis.call('ZADD', KEYS[6], due, id)
return due
"""

# Record the outcome of one sync pass, applied only if no newer version came.
# KEYS: 1 doc, 2 sync state, 3 pending, 4 synced, 5 failed, 6 reverse membership
# ARGV: 1 id, 2 version applied, 3 outcome (synced|failed), 4 learner id or "",
#       5 applied snapshot JSON or "", 6 error or "", 7 now ms, 8 now ISO, 9 prefix,
#       10 the user this one now waits for (a conflict) or "", 11 "gone" to
#       remember an applied delete or "", 12 how long to remember it (ms),
#       13 when the pass began (ms): a holder that finished since then may
#       have let go already, so the user tries again instead of waiting
# Returns {"done"|"newer", pending since ms or -1, modified ms or -1,
# space-separated users that waited for this one and are pending again}.
FINISH_SYNC = """
local id, prefix = ARGV[1], ARGV[9]
local cur = redis.call('HMGET', KEYS[1], 'v', 'del', 'modified_ms')
local fields = {'updated_at', ARGV[8]}
if ARGV[4] ~= '' then table.insert(fields, 'learner_id'); table.insert(fields, ARGV[4]) end
if ARGV[5] ~= '' then table.insert(fields, 'applied'); table.insert(fields, ARGV[5]) end
redis.call('HSET', KEYS[2], unpack(fields))
if cur[1] ~= ARGV[2] then return {'newer', -1, -1, ''} end
local since = tonumber(redis.call('ZSCORE', KEYS[3], id) or '-1')
redis.call('ZREM', KEYS[3], id)
local now = tonumber(ARGV[7])
-- This user no longer waits for the one it waited for, unless it still does.
local waited = redis.call('HGET', KEYS[2], 'waits_on')
if waited then
  redis.call('SREM', prefix .. 'conflict:' .. waited, id)
  redis.call('HDEL', KEYS[2], 'waits_on')
end
redis.call('HDEL', KEYS[2], 'faults')
-- Users that failed on what this one held try again: it may have let go.
local waiters = redis.call('SMEMBERS', prefix .. 'conflict:' .. id)
redis.call('DEL', prefix .. 'conflict:' .. id)
local released = {}
for _, w in ipairs(waiters) do
  local wdoc = redis.call('HMGET', prefix .. 'u:' .. w, 'v', 'del')
  if wdoc[1] and wdoc[2] ~= '1' then
    redis.call('ZADD', KEYS[3], 'NX', now, w)
    redis.call('ZREM', KEYS[4], w)
    redis.call('ZREM', KEYS[5], w)
    redis.call('HSET', prefix .. 'sync:' .. w, 'state', 'pending', 'applied_v', '0')
    redis.call('HDEL', prefix .. 'sync:' .. w, 'waits_on')
    table.insert(released, w)
  end
end
released = table.concat(released, ' ')
if ARGV[3] == 'synced' then
  if cur[2] == '1' then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[6])
    redis.call('EXPIRE', prefix .. 'events:' .. id, 2592000)
    redis.call('ZREM', KEYS[4], id)
    redis.call('ZREM', KEYS[5], id)
    if ARGV[11] == 'gone' then
      redis.call('ZADD', prefix .. 'u:gone', now, id)
      redis.call('ZREMRANGEBYSCORE', prefix .. 'u:gone', '-inf', now - tonumber(ARGV[12]))
    end
    return {'done', since, tonumber(cur[3] or '-1'), released}
  end
  redis.call('ZREM', KEYS[5], id)
  redis.call('ZADD', KEYS[4], now, id)
  redis.call('HSET', KEYS[2], 'state', 'synced', 'applied_v', ARGV[2], 'error', ARGV[6])
else
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZADD', KEYS[5], now, id)
  redis.call('HSET', KEYS[2], 'state', 'failed', 'applied_v', ARGV[2], 'error', ARGV[6])
  if ARGV[10] ~= '' then
    local holder = ARGV[10]
    local hv = redis.call('HGET', prefix .. 'u:' .. holder, 'v')
    local hfin = tonumber(redis.call('HGET', prefix .. 'sync:' .. holder, 'finished_ms') or '0')
    if hv and hfin < tonumber(ARGV[13]) then
      redis.call('SADD', prefix .. 'conflict:' .. holder, id)
      redis.call('HSET', KEYS[2], 'waits_on', holder)
    else
      redis.call('ZREM', KEYS[5], id)
      redis.call('ZADD', KEYS[3], now, id)
      redis.call('HSET', KEYS[2], 'state', 'pending', 'applied_v', '0')
      released = (released == '' and id) or (released .. ' ' .. id)
    end
  end
end
redis.call('HSET', KEYS[2], 'finished_ms', now)
return {'done', since, tonumber(cur[3] or '-1'), released}
"""

# Change a group's membership as set operations. A member to add that is not
# a live user of the same tenant is left out, never stored.
# KEYS: 1 group doc, 2 members (a sorted set, all scores 0: id order)
# ARGV: 1 group id, 2 tenant prefix, 3 remove_all "1"/"0", 4 n_add, then n_add
#       ids to add, then ids to remove
# Returns {status, changed, skipped}: status ok | not_found; on ok the users
# whose membership changed (for re-sync) and the ids left out, each
# space-separated.
CHANGE_MEMBERS = """
local gdoc, mset, gid, prefix = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local state = redis.call('HMGET', gdoc, 'v', 'del')
if not state[1] or state[2] == '1' then return {'not_found', '', ''} end
local n_add = tonumber(ARGV[4])
local adds, skipped = {}, {}
for i = 5, 4 + n_add do
  local u = redis.call('HMGET', prefix .. 'u:' .. ARGV[i], 'v', 'del')
  if not u[1] or u[2] == '1' then
    table.insert(skipped, ARGV[i])
  else
    table.insert(adds, ARGV[i])
  end
end
local changed = {}
if ARGV[3] == '1' then
  for _, uid in ipairs(redis.call('ZRANGE', mset, 0, -1)) do
    redis.call('SREM', prefix .. 'u:' .. uid .. ':groups', gid)
    table.insert(changed, uid)
  end
  redis.call('DEL', mset)
end
for i = 5 + n_add, #ARGV do
  if redis.call('ZREM', mset, ARGV[i]) == 1 then
    redis.call('SREM', prefix .. 'u:' .. ARGV[i] .. ':groups', gid)
    table.insert(changed, ARGV[i])
  end
end
for _, uid in ipairs(adds) do
  if redis.call('ZADD', mset, 0, uid) == 1 then
    redis.call('SADD', prefix .. 'u:' .. uid .. ':groups', gid)
    table.insert(changed, uid)
  end
end
-- The users whose teams may change: a durable follow-up, in this same step.
for _, uid in ipairs(changed) do
  redis.call('SADD', prefix .. 'followup:users', uid)
end
if #changed > 0 then redis.call('INCR', prefix .. 'followup:v') end
return {'ok', table.concat(changed, ' '), table.concat(skipped, ' ')}
"""

# Drop group follow-ups that were re-queued, unless a group change wrote
# follow-ups since they were read (it may have named the same users again:
# they stay for the next drain). KEYS: 1 users, 2 groups, 3 version
# ARGV: 1 version read, 2 group or "", then users. Returns 1 when dropped.
DROP_FOLLOWUPS = """
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then redis.call('SREM', KEYS[2], ARGV[2]) end
for i = 3, #ARGV do redis.call('SREM', KEYS[1], ARGV[i]) end
return 1
"""

# Take or release a per-user lock (token-checked release).
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Find a user by userName and read it in one round trip.
# KEYS: 1 unique index; ARGV: 1 lower-cased userName, 2 tenant prefix
# Returns {id, doc, version, created, modified} or nil.
FIND_BY_USER_NAME = """
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return nil end
local row = redis.call('HMGET', ARGV[2] .. 'u:' .. id, 'doc', 'v', 'created', 'modified', 'del')
if not row[1] or row[5] == '1' then return nil end
return {id, row[1], row[2], row[3], row[4]}
"""
