-- resolve.lua: who holds an API key (Accounts::resolve), after its index
-- named the account. Notes the key's last use at most once per ARGV[3] ms.
-- KEYS[1]  the account hash, KEYS[2] the account's keys hash
-- ARGV     SHA-256 of the key (hex), how often to note a use (ms)
-- Reply    {tier, key id}; {'', key id} for a key past its expiry; nil for nobody.
-- The time is Redis's own (TIME): one clock for every gateway of a fleet.
name_first_key(KEYS[1], KEYS[2])
local tier = redis.call('HGET', KEYS[1], 'tier')
if not tier then return false end
local kid = redis.call('HGET', KEYS[2], 'd:' .. ARGV[1])
if not kid then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = redis.call('HGET', KEYS[2], kid .. ':expires')
if expires and now >= tonumber(expires) then return {'', kid} end
local used = tonumber(redis.call('HGET', KEYS[2], kid .. ':used') or '0')
if now - used >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], kid .. ':used', tostring(now))
end
return {tier, kid}
