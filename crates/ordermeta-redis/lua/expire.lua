-- expire.lua: marks the given open orders expired when their good-til has passed.
--
-- The caller picks the candidates from KEYS[2] / KEYS[3] (ZRANGEBYSCORE up to the height /
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
-- Returns: the number of orders marked expired. Candidates that are no longer open, or whose
-- index entry was stale or corrupt, leave the open indexes, so the caller's loop always ends.

local STATUSES = {'pending', 'active', 'cancelling', 'cancelled', 'expired', 'filled', 'failed'}
local STATUS_KEY = {}
for i, s in ipairs(STATUSES) do STATUS_KEY[s] = KEYS[4 + i] end
local OPEN = {pending = true, active = true, cancelling = true}

local height = tonumber(ARGV[1])
local btime = tonumber(ARGV[2])
local at, entry, ttl, token = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]

local function unindex_open(id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end

local n = 0
for i = 7, #ARGV do
  local id = ARGV[i]
  local key = KEYS[5 + i]
  local f = redis.call('HMGET', key, 'status', 'good_until_block', 'good_til_block_time', 'history')
  local st, gtb, gtt, hist = f[1], tonumber(f[2]), tonumber(f[3]), f[4]
  if not (st and OPEN[st]) then
    unindex_open(id)
  elseif not ((gtb and height and height >= gtb) or (gtt and btime and btime >= gtt)) then
    -- Not expired after all: put the index entries back in line with the record.
    unindex_open(id)
    if gtb then redis.call('ZADD', KEYS[2], f[2], id) end
    if gtt then redis.call('ZADD', KEYS[3], f[3], id) end
  elseif (not hist) or string.sub(hist, 1, 1) ~= '[' or string.sub(hist, -1) ~= ']' then
    unindex_open(id)
  else
    local v = redis.pcall('HINCRBY', key, 'version', 1)
    if type(v) == 'table' and v.err then
      unindex_open(id)
    else
      local body = string.sub(hist, 2, -2)
      if string.find(body, '%S') then
        hist = '[' .. body .. ',' .. entry .. ']'
      else
        hist = '[' .. entry .. ']'
      end
      redis.call('HSET', key, 'status', 'expired', 'updated_at', at, 'history', hist, 'op', token)
      redis.call('ZREM', STATUS_KEY[st], id)
      redis.call('ZADD', STATUS_KEY['expired'], 0, id)
      unindex_open(id)
      redis.call('ZADD', KEYS[4], at, id)
      if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
      n = n + 1
    end
  end
end
return n
