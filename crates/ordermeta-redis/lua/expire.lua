-- expire.lua: marks the given open orders expired when their good-til has passed.
--
-- The caller picks the candidates from KEYS[2] or KEYS[3] (ZRANGEBYSCORE up to the height /
-- block time), so the work is O(expired); this script re-checks each one atomically.
--
-- KEYS[1..11]  the index keys, as in record.lua: ids, open:gtb, open:gtt, terminal, then the
--              seven status ZSETs (pending, active, cancelling, cancelled, expired, filled, failed)
-- KEYS[12..]   {ns}:o:<order id>     the candidates' HASHes, in the order of ARGV[7..]
--
-- ARGV[1]      latest height, or '' when unknown
-- ARGV[2]      latest block time (unix s), or '' when unknown
-- ARGV[3]      at (µs): the new updated_at
-- ARGV[4]      history entry (JSON object) to append
-- ARGV[5]      retention TTL of terminal records in milliseconds, 0 for none
-- ARGV[6]      operation token, written to the field `op`
-- ARGV[7..]    the candidates' order ids
--
-- An expired order loses its claim lease (lease_token, lease_until), as on leaving cancelling
-- by a transition; its version grows by one, saturating at 2^63 - 1.
--
-- Each candidate is judged on its own, every field it relies on checked before its first
-- write: its key's type, status, good-til, history and version. A candidate failing a check
-- is skipped: left as it is, and in its open index, and named in the reply; the others go on.
-- Candidates that are gone or no longer open leave the open indexes; those not expired after
-- all are put back in line with their good-til. So every candidate leaves the caller's range
-- or is reported, and the caller's loop always ends.
--
-- Returns: {'ok', n, id, reason, id, reason, ...}  n orders marked expired, then the skipped
--          {'index', <key>, <type>}                an index key holds no sorted set; nothing
--                                                  written

local STATUSES = {'pending', 'active', 'cancelling', 'cancelled', 'expired', 'filled', 'failed'}
local STATUS_KEY = {}
for i, s in ipairs(STATUSES) do STATUS_KEY[s] = KEYS[4 + i] end
local OPEN = {pending = true, active = true, cancelling = true}
local I64_MAX = '9223372036854775807'

local height = tonumber(ARGV[1])
local btime = tonumber(ARGV[2])
local at, entry, ttl, token = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]

-- The index keys written below, checked once before any write.
for _, k in ipairs({KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], STATUS_KEY['expired']}) do
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'zset' and t ~= 'none' then return {'index', k, t} end
end

-- Byte-wise comparison of equally long digit strings (never `<` on strings, which follows the
-- server's locale).
local function digits_gt(a, b)
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return false
end

-- A good-til as the decoder reads it: decimal digits (leading zeros allowed) of a u32.
-- Returns the number, or nil. (Exact: a double holds every u32.)
local function good_til(s)
  if not s or not string.find(s, '^%d+$') then return nil end
  local v = tonumber(s)
  if v > 4294967295 then return nil end
  return v
end

-- A version as the decoder reads it: decimal digits (leading zeros allowed), 1..=i64::MAX.
-- Returns it without leading zeros, or nil.
local function version_of(s)
  if not s or not string.find(s, '^%d+$') then return nil end
  local d = string.gsub(s, '^0+', '')
  if d == '' or #d > 19 or (#d == 19 and digits_gt(d, I64_MAX)) then return nil end
  return d
end

-- The successor of a canonical version, exact at any size, saturating at i64::MAX.
local function next_version(d)
  if d == I64_MAX then return d end
  if #d < 15 then return string.format('%d', tonumber(d) + 1) end
  local head, nines = string.match(d, '^(.-)(9*)$')
  if head == '' then return '1' .. string.rep('0', #nines) end
  local last = string.byte(head, #head) - 47 -- the digit, plus one
  return string.sub(head, 1, -2) .. string.char(48 + last) .. string.rep('0', #nines)
end

local function unindex_open(id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end

local reply = {'ok', 0}
local function skip(id, reason)
  reply[#reply + 1] = id
  reply[#reply + 1] = reason
end

local n = 0
for i = 7, #ARGV do
  local id = ARGV[i]
  local key = KEYS[5 + i]
  local t = redis.call('TYPE', key)['ok']
  if t == 'none' then
    -- Gone (deleted since the index was read): a stale entry.
    unindex_open(id)
  elseif t ~= 'hash' then
    skip(id, "the order's key holds a " .. t .. ', not a hash')
  else
    local f = redis.call('HMGET', key, 'status', 'good_until_block', 'good_til_block_time',
      'history', 'version')
    local st, hist = f[1], f[4]
    local gtb, gtt = good_til(f[2]), good_til(f[3])
    local version = version_of(f[5])
    if not (st and STATUS_KEY[st]) then
      skip(id, 'status is missing or unknown')
    elseif not OPEN[st] then
      -- Terminal: a stale entry in the open index.
      unindex_open(id)
    elseif (f[2] and not gtb) or (f[3] and not gtt) or (f[2] and f[3]) or not (f[2] or f[3]) then
      skip(id, 'good_until_block / good_til_block_time: exactly one must be set, a u32')
    elseif not ((gtb and height and height >= gtb) or (gtt and btime and btime >= gtt)) then
      -- Not expired after all: put the index entries back in line with the record.
      unindex_open(id)
      if gtb then redis.call('ZADD', KEYS[2], gtb, id) end
      if gtt then redis.call('ZADD', KEYS[3], gtt, id) end
    elseif (not hist) or string.sub(hist, 1, 1) ~= '[' or string.sub(hist, -1) ~= ']' then
      skip(id, 'history is not a JSON array')
    elseif not version then
      skip(id, 'version is not an integer in 1..=9223372036854775807')
    else
      local body = string.sub(hist, 2, -2)
      if string.find(body, '%S') then
        hist = '[' .. body .. ',' .. entry .. ']'
      else
        hist = '[' .. entry .. ']'
      end
      redis.call('HSET', key, 'status', 'expired', 'updated_at', at, 'history', hist, 'op', token,
        'version', next_version(version))
      redis.call('HDEL', key, 'lease_token', 'lease_until')
      redis.call('ZREM', STATUS_KEY[st], id)
      redis.call('ZADD', STATUS_KEY['expired'], 0, id)
      unindex_open(id)
      redis.call('ZADD', KEYS[4], at, id)
      if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
      n = n + 1
    end
  end
end
reply[2] = n
return reply
