-- transition.lua: writes one compare-and-set the caller has decided, if the record is still
-- the one it read.
--
-- The caller reads the whole record, decodes and checks it (every field, the status, the
-- lease condition), computes the new record and sends what changes. This script applies that
-- only when the record's `op` field (a fresh token on every write of this crate) is still the
-- one read; otherwise the caller reads again. So a record the caller cannot decode is never
-- written, and everything is checked before the first write.
--
-- KEYS[1..11]  the index keys, as in record.lua: ids, open:gtb, open:gtt, terminal, then the
--              seven status ZSETs (pending, active, cancelling, cancelled, expired, filled, failed)
-- KEYS[12]     {ns}:o:<order id>     the order's HASH
--
-- ARGV[1]      order id
-- ARGV[2]      the `op` the record held when read, '' when it had none
-- ARGV[3]      this call's operation token (also among the fields to set)
-- ARGV[4]      the status read, ARGV[5] the new status
-- ARGV[6]      at (µs): the new updated_at, the terminal index score
-- ARGV[7]      the open index the order belongs in: 2 (open:gtb) or 3 (open:gtt), ARGV[8] its
--              score (the good-til); the order is (re)indexed there when the new status is open
-- ARGV[9]      retention TTL of terminal records in milliseconds, 0 for none
-- ARGV[10]     number of field/value pairs f to set, then the f pairs, then the fields to delete
--
-- Returns: {'ok'}                    written (also when this very call already had been)
--          {'changed'}               the record is gone or was written since it was read;
--                                    nothing written
--          {'index', <key>, <type>}  an index key holds no sorted set; nothing written

local STATUSES = {'pending', 'active', 'cancelling', 'cancelled', 'expired', 'filled', 'failed'}
local TERMINAL = {cancelled = true, expired = true, filled = true, failed = true}
local STATUS_KEY = {}
for i, s in ipairs(STATUSES) do STATUS_KEY[s] = KEYS[4 + i] end

local key, id, seen, token = KEYS[12], ARGV[1], ARGV[2], ARGV[3]
local from, to, at = ARGV[4], ARGV[5], ARGV[6]
local open_key = KEYS[tonumber(ARGV[7])]
local ttl = tonumber(ARGV[9])
local nset = tonumber(ARGV[10])

-- Checks.
if redis.call('TYPE', key)['ok'] ~= 'hash' then return {'changed'} end
local op = redis.call('HGET', key, 'op') or ''
-- A re-sent call (a cluster client retrying) finds its own token: it already ran.
if op == token then return {'ok'} end
if op ~= seen then return {'changed'} end
local touched = {STATUS_KEY[from], STATUS_KEY[to]}
if TERMINAL[to] then
  touched[#touched + 1] = KEYS[2]
  touched[#touched + 1] = KEYS[3]
  touched[#touched + 1] = KEYS[4]
else
  touched[#touched + 1] = open_key
end
for _, k in ipairs(touched) do
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'zset' and t ~= 'none' then return {'index', k, t} end
end

-- Writes.
redis.call('HSET', key, unpack(ARGV, 11, 10 + 2 * nset))
if #ARGV > 10 + 2 * nset then redis.call('HDEL', key, unpack(ARGV, 11 + 2 * nset)) end
if from ~= to then
  redis.call('ZREM', STATUS_KEY[from], id)
  redis.call('ZADD', STATUS_KEY[to], 0, id)
end
if TERMINAL[to] then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[4], at, id)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
else
  -- An open order belongs in its open index (this also heals an entry lost to corruption).
  redis.call('ZADD', open_key, ARGV[8], id)
end
return {'ok'}
