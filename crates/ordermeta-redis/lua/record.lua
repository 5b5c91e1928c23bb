-- record.lua: records new orders, all or nothing.
--
-- Every script of this crate takes the same eleven index keys first; all keys share the
-- namespace's hash tag, so one script call touches one Redis Cluster slot.
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
-- ARGV[4..]    per record: order id, status, good-til block or '', good-til block time or '',
--              updated_at (µs), placed_at (µs), k, field count f, then f field/value pairs of
--              the HASH (the claim lease, lease_token and lease_until, among them when the
--              record holds one)
--
-- Returns: {'ok'}                          every record written (or this very call already had been)
--          {'exists', <order id>}          the first id that exists or repeats; nothing written
--          {'corrupt', <order id>, <why>}  the id's key holds no hash; nothing written
--          {'index', <key>, <type>}        an index key holds no sorted set; nothing written

-- Written for speed: no tables per record, fields passed to HSET straight from ARGV.
local STATUSES = {'pending', 'active', 'cancelling', 'cancelled', 'expired', 'filled', 'failed'}
local OPEN = {pending = true, active = true, cancelling = true}

local ttl = tonumber(ARGV[1])
local token = ARGV[2]
local n = tonumber(ARGV[3])

-- Check everything before writing anything (all or nothing): the order keys, and the type of
-- every index key a write below touches (a write to a key of another type would fail half-way).
local checked = {}
local function index_type(k)
  if checked[k] then return nil end
  checked[k] = true
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'zset' and t ~= 'none' then return t end
  return nil
end
local seen = n > 1 and {} or nil
local p, kp = 4, 12
for i = 1, n do
  local id, status, key = ARGV[p], ARGV[p + 1], KEYS[kp]
  local k = tonumber(ARGV[p + 6])
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
  local touched = {KEYS[1]}
  for s = 1, 7 do
    if STATUSES[s] == status then touched[2] = KEYS[4 + s] break end
  end
  if OPEN[status] then
    if ARGV[p + 2] ~= '' then touched[#touched + 1] = KEYS[2] end
    if ARGV[p + 3] ~= '' then touched[#touched + 1] = KEYS[3] end
  else
    touched[#touched + 1] = KEYS[4]
  end
  if ttl > 0 then
    for j = 2, 11 do touched[#touched + 1] = KEYS[j] end
  end
  for j = 1, k do touched[#touched + 1] = KEYS[kp + j] end
  for _, ik in ipairs(touched) do
    local bad = index_type(ik)
    if bad then return {'index', ik, bad} end
  end
  p = p + 8 + 2 * tonumber(ARGV[p + 7])
  kp = kp + 1 + k
end

p, kp = 4, 12
for i = 1, n do
  local id, status, key = ARGV[p], ARGV[p + 1], KEYS[kp]
  local k = tonumber(ARGV[p + 6])
  local last = p + 7 + 2 * tonumber(ARGV[p + 7])
  -- A record removed by its retention TTL leaves index entries behind; drop them first.
  if ttl > 0 and redis.call('ZSCORE', KEYS[1], id) then
    -- (Its lookup entries cannot be found without the old record: lookups drop them.)
    for j = 2, 11 do redis.call('ZREM', KEYS[j], id) end
  end
  redis.call('HSET', key, unpack(ARGV, p + 8, last))
  redis.call('ZADD', KEYS[1], 0, id)
  for j = 1, k do redis.call('ZADD', KEYS[kp + j], ARGV[p + 5], id) end
  for s = 1, 7 do
    if STATUSES[s] == status then redis.call('ZADD', KEYS[4 + s], 0, id) break end
  end
  if OPEN[status] then
    if ARGV[p + 2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[p + 2], id) end
    if ARGV[p + 3] ~= '' then redis.call('ZADD', KEYS[3], ARGV[p + 3], id) end
  else
    redis.call('ZADD', KEYS[4], ARGV[p + 4], id)
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  end
  p = last + 1
  kp = kp + 1 + k
end
return {'ok'}
