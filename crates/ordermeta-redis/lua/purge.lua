-- purge.lua: deletes the given terminal orders when they were last updated before a cut-off.
--
-- The caller picks the candidates from KEYS[4] (ZRANGEBYSCORE up to the cut-off), so the work
-- is O(purged); this script re-checks each one atomically, comparing exact integers.
--
-- KEYS[1..11]  the index keys, as in record.lua: ids, open:gtb, open:gtt, terminal, then the
--              seven status ZSETs (pending, active, cancelling, cancelled, expired, filled, failed)
-- KEYS[12..]   {ns}:o:<order id>     the candidates' HASHes, in the order of ARGV[2..]
--
-- ARGV[1]      the cut-off (µs): records with updated_at strictly before it are deleted
-- ARGV[2..]    the candidates' order ids
--
-- Returns: {deleted, kept}: how many records were deleted, and how many candidates stay in
-- KEYS[4] (terminal but not old enough; the caller skips past them). Candidates whose record
-- has gone (retention TTL) lose their index entries; they are in neither count.

local TERMINAL = {cancelled = true, expired = true, filled = true, failed = true}

-- Exact comparison of decimal integer strings (Lua numbers are doubles, and µs timestamps can
-- exceed 2^53). Byte-wise, never with `<` on strings, which follows the server's locale.
local function digits_lt(a, b)
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end
local function int_lt(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then return na end
  if na then a, b = string.sub(b, 2), string.sub(a, 2) end
  if #a ~= #b then return #a < #b end
  return digits_lt(a, b)
end

local cut = ARGV[1]
local deleted, kept = 0, 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = KEYS[10 + i]
  local f = redis.call('HMGET', key, 'status', 'updated_at')
  local st, up = f[1], f[2]
  if (not st) and redis.call('EXISTS', key) == 0 then
    for k = 1, 11 do redis.call('ZREM', KEYS[k], id) end
  elseif not (st and TERMINAL[st]) then
    redis.call('ZREM', KEYS[4], id)
  elseif up and string.find(up, '^%-?%d+$') and int_lt(up, cut) then
    redis.call('DEL', key)
    for k = 1, 11 do redis.call('ZREM', KEYS[k], id) end
    deleted = deleted + 1
  else
    kept = kept + 1
  end
end
return {deleted, kept}
