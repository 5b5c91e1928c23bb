-- record.lua: records new orders, all or nothing.
--
-- Every script of this crate but cas.lua and lookup.lua takes the same eleven index keys
-- first; all keys share the namespace's hash tag, so one script call touches one Redis
-- Cluster slot.
--
-- KEYS[1]      {ns}:ids              ZSET of every order id (score 0, read in byte order)
-- KEYS[2]      {ns}:open:gtb         ZSET of open short-term orders, score = good-til block
-- KEYS[3]      {ns}:open:gtt         ZSET of open stateful orders, score = good-til block time
-- KEYS[4]      {ns}:terminal         ZSET of terminal orders, score = updated_at (µs)
-- KEYS[5..11]  {ns}:status:<status>  ZSET per status (score 0): pending, active, cancelling,
--                                    cancelled, expired, filled, failed (in this order)
-- KEYS[12..]   per record, in the order of the records in ARGV: {ns}:o:<order id> (its
--              HASH), then its k lookup-index ZSETs, {ns}:cid:... and, when it has a label,
--              {ns}:lbl:... (score = placed_at in µs, member = order id)
--
-- ARGV[1]      retention TTL of terminal records in milliseconds, 0 for none
-- ARGV[2]      operation token, written to the field `op` (recognises a retry of this call)
-- ARGV[3]      number of records n
-- ARGV[4..]    per record: order id, the KEYS position of its status set (5..11), the KEYS
--              position of its place (2 or 3: open, by good-til; 4: terminal) and its score
--              there (the good-til, or updated_at in µs), placed_at (µs), k, field count f,
--              then f field/value pairs of the HASH (`op` first; the claim lease,
--              lease_token and lease_until, among them when the record holds one)
--
-- Returns: {'ok'}                          every record written (or this very call already had been)
--          {'exists', <order id>}          the first id that exists or repeats; nothing written
--          {'corrupt', <order id>, <why>}  the id's key holds no hash; nothing written
--          {'index', <key>, <type>}        an index key holds no sorted set; nothing written
--
-- Written for speed: no tables per record, fields passed to HSET straight from ARGV, and no
-- type check of index keys when all is well: index writes run first, each logged, and are
-- undone if one fails (a key of another type); the HASHes are written last.

local ttl = tonumber(ARGV[1])
local token = ARGV[2]
local n = tonumber(ARGV[3])

-- The order keys: each must not exist (or hold this very call's write).
local seen = n > 1 and {} or nil
local p, kp = 4, 12
for i = 1, n do
  local id, key = ARGV[p], KEYS[kp]
  if seen then
    if seen[id] then return {'exists', id} end
    seen[id] = true
  end
  local t = redis.call('TYPE', key)['ok']
  if t == 'hash' then
    if redis.call('HGET', key, 'op') == token then return {'ok'} end
    return {'exists', id}
  elseif t ~= 'none' then
    return {'corrupt', id, "the order's key holds a " .. t .. ', not a hash'}
  end
  kp = kp + 1 + tonumber(ARGV[p + 5])
  p = p + 7 + 2 * tonumber(ARGV[p + 6])
end

-- Index writes, logged as (key, member, score to restore or false to remove).
local log, nlog = {}, 0
local failed = nil
local function undo_all()
  for j = nlog - 2, 1, -3 do
    local k, m, prev = log[j], log[j + 1], log[j + 2]
    if prev then redis.call('ZADD', k, prev, m) else redis.call('ZREM', k, m) end
  end
end
-- ZADD that logs what it added (a member already there keeps the new score on undo: only a
-- stale entry, of an order gone without its index entries, can be there).
local function add(k, score, id)
  local r = redis.pcall('ZADD', k, score, id)
  if type(r) == 'table' then failed = k return false end
  if r == 1 then
    log[nlog + 1], log[nlog + 2], log[nlog + 3] = k, id, false
    nlog = nlog + 3
  end
  return true
end
-- ZREM of a stale entry, logged with its score.
local function drop(k, id)
  local s = redis.pcall('ZSCORE', k, id)
  if type(s) == 'table' then failed = k return false end
  if s then
    redis.call('ZREM', k, id)
    log[nlog + 1], log[nlog + 2], log[nlog + 3] = k, id, s
    nlog = nlog + 3
  end
  return true
end

p, kp = 4, 12
for i = 1, n do
  local id = ARGV[p]
  local k = tonumber(ARGV[p + 5])
  local ok = true
  -- A record removed by its retention TTL leaves index entries behind; drop them first.
  -- (Its lookup entries cannot be found without the old record: lookups drop them.)
  if ttl > 0 then
    local s = redis.pcall('ZSCORE', KEYS[1], id)
    if type(s) == 'table' then
      ok, failed = false, KEYS[1]
    elseif s then
      for j = 2, 11 do
        if not drop(KEYS[j], id) then ok = false break end
      end
    end
  end
  ok = ok and add(KEYS[1], 0, id)
    and add(KEYS[tonumber(ARGV[p + 1])], 0, id)
    and add(KEYS[tonumber(ARGV[p + 2])], ARGV[p + 3], id)
  for j = 1, k do
    ok = ok and add(KEYS[kp + j], ARGV[p + 4], id)
  end
  if not ok then
    undo_all()
    return {'index', failed, redis.call('TYPE', failed)['ok']}
  end
  kp = kp + 1 + k
  p = p + 7 + 2 * tonumber(ARGV[p + 6])
end

-- The HASHes.
p, kp = 4, 12
for i = 1, n do
  local key = KEYS[kp]
  local last = p + 6 + 2 * tonumber(ARGV[p + 6])
  redis.call('HSET', key, unpack(ARGV, p + 7, last))
  if ttl > 0 and ARGV[p + 2] == '4' then redis.call('PEXPIRE', key, ttl) end
  kp = kp + 1 + tonumber(ARGV[p + 5])
  p = last + 1
end
return {'ok'}
