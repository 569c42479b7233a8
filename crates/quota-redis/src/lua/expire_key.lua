-- expire_key.lua: makes a key stop working at a time (AccountAdmin::expire_key),
-- or keeps the earlier expiry it has.
-- KEYS[1]  the account hash, KEYS[2] the account's keys hash
-- ARGV     key id, when it stops (ms)
-- Reply    'ok', 'missing' (no account) or 'nokey'.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
name_first_key(KEYS[1], KEYS[2])
if redis.call('HEXISTS', KEYS[2], ARGV[1] .. ':digest') == 0 then return 'nokey' end
local current = redis.call('HGET', KEYS[2], ARGV[1] .. ':expires')
if not current or tonumber(ARGV[2]) < tonumber(current) then
  redis.call('HSET', KEYS[2], ARGV[1] .. ':expires', ARGV[2])
end
return 'ok'
