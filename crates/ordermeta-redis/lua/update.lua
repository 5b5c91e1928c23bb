-- update.lua: writes a field patch the caller has decided (no status change), if the record is
-- still the one it read.
--
-- As in transition.lua, the caller reads the whole record, decodes and checks it (every
-- field, the status and version condition), computes the new record and sends what changes;
-- this script applies that only when the record's `op` field is still the one read. The
-- history, the lease and every index but {ns}:terminal are left alone: a patch changes neither
-- the status, the good-til, the identity nor the label.
--
-- KEYS[1..11]  the index keys, as in record.lua: ids, open:gtb, open:gtt, terminal, then the
--              seven status ZSETs (pending, active, cancelling, cancelled, expired, filled, failed)
-- KEYS[12]     {ns}:o:<order id>     the order's HASH
--
-- ARGV[1]      order id
-- ARGV[2]      the `op` the record held when read, '' when it had none
-- ARGV[3]      this call's operation token (also among the fields to set)
-- ARGV[4]      '1' when the order is terminal (its {ns}:terminal score, the new updated_at,
--              moves and its retention TTL restarts), else '0'
-- ARGV[5]      at (µs): the new updated_at
-- ARGV[6]      retention TTL of terminal records in milliseconds, 0 for none
-- ARGV[7]      number of field/value pairs f to set, then the f pairs, then the fields to delete
--
-- Returns: {'ok'}                    written (also when this very call already had been)
--          {'changed'}               the record is gone or was written since it was read;
--                                    nothing written
--          {'index', <key>, <type>}  {ns}:terminal holds no sorted set; nothing written

local key, id, seen, token = KEYS[12], ARGV[1], ARGV[2], ARGV[3]
local terminal, at = ARGV[4] == '1', ARGV[5]
local ttl = tonumber(ARGV[6])
local nset = tonumber(ARGV[7])

-- Checks.
if redis.call('TYPE', key)['ok'] ~= 'hash' then return {'changed'} end
local op = redis.call('HGET', key, 'op') or ''
-- A re-sent call (a cluster client retrying) finds its own token: it already ran.
if op == token then return {'ok'} end
if op ~= seen then return {'changed'} end
if terminal then
  local t = redis.call('TYPE', KEYS[4])['ok']
  if t ~= 'zset' and t ~= 'none' then return {'index', KEYS[4], t} end
end

-- Writes.
redis.call('HSET', key, unpack(ARGV, 8, 7 + 2 * nset))
if #ARGV > 7 + 2 * nset then redis.call('HDEL', key, unpack(ARGV, 8 + 2 * nset)) end
if terminal then
  -- Purge picks candidates by this score: keep it the record's updated_at.
  redis.call('ZADD', KEYS[4], at, id)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end
return {'ok'}
