-- keys.lua: an account's keys (AccountAdmin::keys).
-- KEYS[1]  the account hash, KEYS[2] the account's keys hash
-- Reply    the keys hash as HGETALL gives it; nil when the account does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
name_first_key(KEYS[1], KEYS[2])
return redis.call('HGETALL', KEYS[2])
