-- lookup.lua: drops a stale member from a lookup index ({ns}:cid:... or {ns}:lbl:...), if the
-- order it names is still as the caller read it.
--
-- A lookup reads the index's newest member and then its order. When the order is gone (a
-- retention TTL, a delete by hand) or no longer belongs in this index (its id recorded again
-- under another client id or label after a TTL), the member is stale: this script removes it,
-- unless the order was written since it was read (then the caller reads again). Unlike the
-- other scripts it takes no namespace index keys: it touches one lookup index only.
--
-- KEYS[1]      the lookup index (ZSET)
-- KEYS[2]      {ns}:o:<member>       the order's HASH
--
-- ARGV[1]      the member (order id)
-- ARGV[2]      the order as read: '' when it was missing, else '=' followed by its `op` field
--              (nothing after '=' when it had none)
--
-- Returns: 1 removed; 0 kept (the order changed since it was read, or the index is no sorted
--          set any more): nothing written

local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'zset' then return 0 end
local ot = redis.call('TYPE', KEYS[2])['ok']
local now
if ot == 'none' then
  now = ''
elseif ot == 'hash' then
  now = '=' .. (redis.call('HGET', KEYS[2], 'op') or '')
else
  return 0
end
if now ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
