-- transition.lua: compare-and-set of one order's status, with the patch and a history append.
--
-- KEYS[1..11]  the index keys, as in record.lua: ids, open:gtb, open:gtt, terminal, then the
--              seven status ZSETs (pending, active, cancelling, cancelled, expired, filled, failed)
-- KEYS[12]     {ns}:o:<order id>     the order's HASH
--
-- ARGV[1]      order id
-- ARGV[2]      new status
-- ARGV[3]      at (µs): the new updated_at, and cancelled_at when the new status is cancelled
-- ARGV[4]      history entry (JSON object) to append to the `history` array
-- ARGV[5]      '1' when ARGV[6] is the new tx_hash, '0' to keep it
-- ARGV[7]      '1' when ARGV[8] is the new cancel_tx_hash, '0' to keep it
-- ARGV[9]      retention TTL of terminal records in milliseconds, 0 for none
-- ARGV[10]     operation token, written to the field `op`
-- ARGV[11..]   the statuses the order must be in
--
-- Returns: {'ok', {field1, value1, ...}}  the updated HASH (also when this very call already ran)
--          {'missing'}                  no such order
--          {'conflict', <status>}       the order is in none of ARGV[11..]; nothing written
--          {'corrupt', <reason>}        the stored record cannot be updated; nothing written

local STATUSES = {'pending', 'active', 'cancelling', 'cancelled', 'expired', 'filled', 'failed'}
local TERMINAL = {cancelled = true, expired = true, filled = true, failed = true}
local function status_key(s)
  for i = 1, 7 do
    if STATUSES[i] == s then return KEYS[4 + i] end
  end
  return nil
end

local key, id, to, at, token = KEYS[12], ARGV[1], ARGV[2], ARGV[3], ARGV[10]

-- One read of the whole record: the checks need three fields and the reply needs all of them.
-- (Fewer server calls per transition is most of this store's speed.)
local flat = redis.call('HGETALL', key)
if #flat == 0 then return {'missing'} end
local at_index = {}
for i = 1, #flat, 2 do at_index[flat[i]] = i + 1 end
local function field(name)
  local i = at_index[name]
  return i and flat[i] or nil
end

local cur, hist = field('status'), field('history')
if not cur then return {'corrupt', 'status is missing'} end
local allowed = false
for i = 11, #ARGV do
  if ARGV[i] == cur then allowed = true break end
end
if not allowed then
  -- A retry of a call that already ran (its reply was lost) finds its own token.
  if cur == to and field('op') == token then return {'ok', flat} end
  return {'conflict', cur}
end

if (not hist) or string.sub(hist, 1, 1) ~= '[' or string.sub(hist, -1) ~= ']' then
  return {'corrupt', 'history is not a JSON array'}
end
local body = string.sub(hist, 2, -2)
if string.find(body, '%S') then
  hist = '[' .. body .. ',' .. ARGV[4] .. ']'
else
  hist = '[' .. ARGV[4] .. ']'
end

-- The new version, computed here when the stored one is a plain decimal that a Lua number
-- holds exactly; anything else goes through HINCRBY, which refuses (writing nothing) what is
-- no 64-bit integer. Either way this precedes every write.
local version = field('version')
if version and string.find(version, '^[1-9]%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?$') then
  version = string.format('%d', tonumber(version) + 1)
else
  local v = redis.pcall('HINCRBY', key, 'version', 1)
  if type(v) == 'table' and v.err then return {'corrupt', 'version is not an integer'} end
  -- As text: a Lua number would round (and print) a large integer wrongly.
  version = redis.call('HGET', key, 'version')
end

local set = {'status', to, 'updated_at', at, 'history', hist, 'op', token, 'version', version}
if to == 'cancelled' then set[#set + 1] = 'cancelled_at' set[#set + 1] = at end
if ARGV[5] == '1' then set[#set + 1] = 'tx_hash' set[#set + 1] = ARGV[6] end
if ARGV[7] == '1' then set[#set + 1] = 'cancel_tx_hash' set[#set + 1] = ARGV[8] end
redis.call('HSET', key, unpack(set))

-- The reply: the record as read, with what was just written.
for i = 1, #set, 2 do
  local j = at_index[set[i]]
  if j then
    flat[j] = set[i + 1]
  else
    flat[#flat + 1] = set[i]
    flat[#flat + 1] = set[i + 1]
  end
end

local from_key = status_key(cur)
if from_key then redis.call('ZREM', from_key, id) end
redis.call('ZADD', status_key(to), 0, id)
if TERMINAL[to] then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[4], at, id)
  local ttl = tonumber(ARGV[9])
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end
return {'ok', flat}
