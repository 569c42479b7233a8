-- pay.lua: records a payment, adds it to the credit and sets the tier
-- (AccountAdmin::record_payment). Every node reads the tier from here, so the
-- new tier applies everywhere at once.
-- KEYS[1]  the account hash
-- ARGV     amount in micro-dollars (decimal), tier
-- Reply    the account's fields (as HMGET in RedisAccounts::FIELDS), or nil when it does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] ~= '0' then
  redis.call('HINCRBY', KEYS[1], 'credit', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'paid', ARGV[1])
end
redis.call('HSET', KEYS[1], 'tier', ARGV[2])
return redis.call('HMGET', KEYS[1], 'id', 'tier', 'credit', 'paid', 'spent', 'requests', 'created_at')
