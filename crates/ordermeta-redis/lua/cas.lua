-- cas.lua: writes one change the caller has decided (a transition or an update), if the order's
-- HASH still holds exactly the record the caller decided on.
--
-- The caller judged the request on a record it read or remembers (its own last write), decoded
-- strictly, and computed the new record. This script compares the HASH with that record byte
-- for byte — every model field, present or absent, `op`, and the field count — and only then
-- writes the fields that change and moves the order between index sets. So a record changed
-- by anyone (another process, an operator's HSET, a TTL) since the caller saw it is never
-- written: the answer is 'changed', and the caller reads the order and judges it again.
--
-- KEYS[1]      {ns}:o:<order id>     the order's HASH
-- KEYS[2..]    the index sets the moves below touch (status sets, open:gtb/gtt, terminal),
--              all in the namespace's hash tag
--
-- ARGV[1]      order id
-- ARGV[2]      this call's operation token (set as `op`)
-- ARGV[3]      the `op` the record held, '' for none
-- ARGV[4]      the HASH's field count
-- ARGV[5]      a separator byte no present value holds, ARGV[6] the present model fields'
--              values (in the order of the names below) joined by it: with the count, equal
--              joins mean equal fields
-- ARGV[7]      PEXPIRE in ms after the write, '0' for none
-- ARGV[8]      k, then k names: the model fields the record holds, then 'op'
-- then         s, then s field/value pairs to set; then d, then d fields to delete
-- then         m, then m index moves of three values each: KEYS position, score ('' = ZREM,
--              else ZADD with it), the score to restore on undo ('' = remove what ZADD added)
--
-- Returns: {'ok'}                    written (also when this very call already had been)
--          {'changed'}               the HASH is not the record the caller decided on (gone,
--                                    written since, of another type); nothing written
--          {'index', <key>, <type>}  an index key holds no sorted set; nothing written
--
-- Index moves run first, each undone if a later one fails (a key of another type), so the
-- script never stops half-way and checks no key's type when all is well; the HASH is
-- written last.

local key, id, token = KEYS[1], ARGV[1], ARGV[2]

-- Compare (the names come from the caller: building them here costs more than passing them).
local k = tonumber(ARGV[8])
local v = redis.pcall('HMGET', key, unpack(ARGV, 9, 8 + k))
if v.err then return {'changed'} end
-- A re-sent call (a cluster client retrying) finds its own token: it already ran.
if v[k] == token then return {'ok'} end
if (v[k] or '') ~= ARGV[3] then return {'changed'} end
v[k] = nil
for i = 1, k - 1 do
  if not v[i] then return {'changed'} end
end
if table.concat(v, ARGV[5]) ~= ARGV[6] then return {'changed'} end
if redis.call('HLEN', key) ~= tonumber(ARGV[4]) then return {'changed'} end

-- Index moves, undone in reverse if one fails.
local p = 9 + k
local nset = tonumber(ARGV[p])
local sets = p + 1
p = sets + 2 * nset
local ndel = tonumber(ARGV[p])
local dels = p + 1
p = dels + ndel
local moves = tonumber(ARGV[p])
local done = {}
for j = 1, moves do
  local q = p + 3 * j - 2
  local mk, score = KEYS[tonumber(ARGV[q])], ARGV[q + 1]
  local r
  if score == '' then r = redis.pcall('ZREM', mk, id) else r = redis.pcall('ZADD', mk, score, id) end
  if type(r) == 'table' then
    for u = j - 1, 1, -1 do
      local uq = p + 3 * u - 2
      local uk, us, undo = KEYS[tonumber(ARGV[uq])], ARGV[uq + 1], ARGV[uq + 2]
      if us == '' then
        if done[u] == 1 then redis.call('ZADD', uk, undo, id) end
      elseif done[u] == 1 then
        redis.call('ZREM', uk, id)
      elseif undo ~= '' then
        redis.call('ZADD', uk, undo, id)
      end
    end
    return {'index', mk, redis.call('TYPE', mk)['ok']}
  end
  done[j] = r
end

-- The HASH.
redis.call('HSET', key, 'op', token, unpack(ARGV, sets, sets + 2 * nset - 1))
if ndel > 0 then redis.call('HDEL', key, unpack(ARGV, dels, dels + ndel - 1)) end
local ttl = tonumber(ARGV[7])
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return {'ok'}
