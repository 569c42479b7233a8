-- update.lua: sets an account's tier and/or credit (AccountAdmin::update).
-- KEYS[1]  the account hash
-- ARGV     tier ('' to keep it), credit in micro-dollars ('' to keep it)
-- Reply    the account's fields (as HMGET in RedisAccounts::FIELDS), or nil when it does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'tier', ARGV[1]) end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'credit', ARGV[2]) end
return redis.call('HMGET', KEYS[1], 'id', 'tier', 'credit', 'paid', 'spent', 'requests', 'created_at')
