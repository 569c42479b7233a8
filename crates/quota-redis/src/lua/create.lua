-- create.lua: creates an account hash unless it exists (AccountAdmin::create).
-- KEYS[1]  the account hash ({prefix}{<id>}:account)
-- ARGV     id, tier, credit (micro-dollars), created_at (ms), SHA-256 of the API key (hex)
-- Reply    1 when created, 0 when the account exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1],
  'id', ARGV[1], 'tier', ARGV[2], 'credit', ARGV[3], 'paid', '0', 'spent', '0',
  'requests', '0', 'created_at', ARGV[4], 'key', ARGV[5])
return 1
