-- purge.lua: deletes the given terminal orders when they were last updated before a cut-off.
--
-- The caller picks the candidates from KEYS[4] (ZRANGEBYSCORE up to the cut-off), so the work
-- is O(purged); this script re-checks each one atomically, comparing exact integers.
--
-- KEYS[1..11]  the index keys, as in record.lua: ids, open:gtb, open:gtt, terminal, then the
--              seven status ZSETs (pending, active, cancelling, cancelled, expired, filled, failed)
-- KEYS[12..]   per candidate, in the order of ARGV[4..]: {ns}:o:<order id> (its HASH), then
--              its k lookup indexes ({ns}:cid:..., {ns}:lbl:...) as the caller derived them
--              from the record's fields
--
-- ARGV[1]      the cut-off (µs): records with updated_at strictly before it are deleted
-- ARGV[2]      the earliest and ARGV[3] the latest updated_at (µs) a record can hold (the
--              decoder's range): one outside it is corrupt
-- ARGV[4..]    per candidate: order id, k, and the fingerprint of the fields the lookup keys
--              derive from, as the caller read them (see `fingerprint` below)
--
-- Each candidate is judged on its own, on what it relies on: its key's type, status,
-- updated_at, and the type of its lookup keys. One failing a check is skipped: left as it is,
-- and in KEYS[4], and named in the reply; the others go on. A candidate whose lookup fields
-- changed since the caller read them is skipped too (the next purge finds it again).
-- Candidates whose record has gone (retention TTL) lose their index entries; open ones (a
-- stale entry) leave KEYS[4].
--
-- Returns: {'ok', deleted, kept, id, reason, ...}: how many records were deleted, how many
--          candidates stay in KEYS[4] (terminal but not old enough; the caller skips past
--          them), then the skipped ones (which stay in KEYS[4] too)
--          {'index', <key>, <type>}: an index key holds no sorted set; nothing written

local STATUSES = {'pending', 'active', 'cancelling', 'cancelled', 'expired', 'filled', 'failed'}
local TERMINAL = {cancelled = true, expired = true, filled = true, failed = true}
local KNOWN = {}
for _, s in ipairs(STATUSES) do KNOWN[s] = true end

-- Every index key is written below: checked once before any write.
for k = 1, 11 do
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t ~= 'zset' and t ~= 'none' then return {'index', KEYS[k], t} end
end

-- Exact comparison of decimal integers given as strings (Lua numbers are doubles, and µs
-- timestamps can exceed 2^53): leading zeros ignored, byte-wise, never with `<` on strings,
-- which follows the server's locale. Both must match '^%-?%d+$'.
local function canon(s)
  local neg = string.sub(s, 1, 1) == '-'
  local d = string.gsub(neg and string.sub(s, 2) or s, '^0+', '')
  if d == '' then return false, '0' end
  return neg, d
end
local function int_lt(a, b)
  local na, da = canon(a)
  local nb, db = canon(b)
  if na ~= nb then return na end
  if na then da, db = db, da end
  if #da ~= #db then return #da < #db end
  for i = 1, #da do
    local x, y = string.byte(da, i), string.byte(db, i)
    if x ~= y then return x < y end
  end
  return false
end

-- The fields the lookup keys derive from, each as '<length>:<bytes>;' or '-;' when absent:
-- the caller computes the same from what it read, so equal fingerprints mean equal keys.
local LOOKUP_FIELDS = {'owner', 'subaccount_number', 'clob_pair_id', 'client_id', 'label'}
local function fingerprint(key)
  local v = redis.call('HMGET', key, unpack(LOOKUP_FIELDS))
  local parts = {}
  for j = 1, #LOOKUP_FIELDS do
    parts[j] = v[j] and (#v[j] .. ':' .. v[j] .. ';') or '-;'
  end
  return table.concat(parts)
end

local function zset_or_none(k)
  local t = redis.call('TYPE', k)['ok']
  if t == 'zset' or t == 'none' then return nil end
  return t
end

local cut, earliest, latest = ARGV[1], ARGV[2], ARGV[3]
local reply = {'ok', 0, 0}
local function skip(id, reason)
  reply[#reply + 1] = id
  reply[#reply + 1] = reason
end

local deleted, kept = 0, 0
local p, kp = 4, 12
while p <= #ARGV do
  local id, k, fp = ARGV[p], tonumber(ARGV[p + 1]), ARGV[p + 2]
  local key = KEYS[kp]
  local lookups = {}
  for j = 1, k do lookups[j] = KEYS[kp + j] end
  p, kp = p + 3, kp + 1 + k
  local bad_lookup = nil
  for _, l in ipairs(lookups) do
    local bad = zset_or_none(l)
    if bad then bad_lookup = 'lookup index ' .. l .. ' holds a ' .. bad .. ', not a sorted set' break end
  end
  local t = redis.call('TYPE', key)['ok']
  if t == 'none' then
    for j = 1, 11 do redis.call('ZREM', KEYS[j], id) end
    -- Gone since the caller read it: its lookup entries are stale too.
    for _, l in ipairs(lookups) do
      if not zset_or_none(l) then redis.call('ZREM', l, id) end
    end
  elseif t ~= 'hash' then
    skip(id, "the order's key holds a " .. t .. ', not a hash')
  else
    local f = redis.call('HMGET', key, 'status', 'updated_at')
    local st, up = f[1], f[2]
    if not (st and KNOWN[st]) then
      skip(id, 'status is missing or unknown')
    elseif not TERMINAL[st] then
      redis.call('ZREM', KEYS[4], id)
    elseif not (up and string.find(up, '^%-?%d+$'))
        or int_lt(up, earliest) or int_lt(latest, up) then
      skip(id, 'updated_at is not an integer of microseconds in range')
    elseif not int_lt(up, cut) then
      kept = kept + 1
    elseif bad_lookup then
      skip(id, bad_lookup)
    elseif fingerprint(key) ~= fp then
      skip(id, 'its client id or label fields changed while purge ran; the next purge takes it')
    else
      redis.call('DEL', key)
      for j = 1, 11 do redis.call('ZREM', KEYS[j], id) end
      for _, l in ipairs(lookups) do redis.call('ZREM', l, id) end
      deleted = deleted + 1
    end
  end
end
reply[2] = deleted
reply[3] = kept
return reply
