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
-- KEYS[12..]   {ns}:o:<order id>     one HASH per record, in the order of the records in ARGV
--
-- ARGV[1]      retention TTL of terminal records in milliseconds, 0 for none
-- ARGV[2]      operation token, written to the field `op` (recognises a retry of this call)
-- ARGV[3]      number of records n (= #KEYS - 11)
-- ARGV[4..]    per record: order id, status, good-til block or '', good-til block time or '',
--              updated_at (µs), field count f, then f field/value pairs of the HASH (the
--              claim lease, lease_token and lease_until, among them when the record holds one)
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
local p = 4
for i = 1, n do
  local id, status, key = ARGV[p], ARGV[p + 1], KEYS[11 + i]
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
    for k = 2, 11 do touched[#touched + 1] = KEYS[k] end
  end
  for _, k in ipairs(touched) do
    local bad = index_type(k)
    if bad then return {'index', k, bad} end
  end
  p = p + 6 + 2 * tonumber(ARGV[p + 5])
end

p = 4
for i = 1, n do
  local id, status, key = ARGV[p], ARGV[p + 1], KEYS[11 + i]
  local last = p + 5 + 2 * tonumber(ARGV[p + 5])
  -- A record removed by its retention TTL leaves index entries behind; drop them first.
  if ttl > 0 and redis.call('ZSCORE', KEYS[1], id) then
    for k = 2, 11 do redis.call('ZREM', KEYS[k], id) end
  end
  redis.call('HSET', key, unpack(ARGV, p + 6, last))
  redis.call('ZADD', KEYS[1], 0, id)
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
end
return {'ok'}
