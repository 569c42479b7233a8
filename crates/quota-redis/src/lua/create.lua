-- create.lua: creates an account hash unless it exists (AccountAdmin::create),
-- with its first key (id `key_` and 12 hex digits of the digest, `default`).
-- KEYS[1]  the account hash ({prefix}{<id>}:account), KEYS[2] its keys hash
-- ARGV     id, tier, credit (micro-dollars), created_at (ms), SHA-256 of the API key (hex)
-- Reply    1 when created, 0 when the account exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1],
  'id', ARGV[1], 'tier', ARGV[2], 'credit', ARGV[3], 'paid', '0', 'spent', '0',
  'requests', '0', 'created_at', ARGV[4])
local kid = 'key_' .. string.sub(ARGV[5], 1, 12)
redis.call('HSET', KEYS[2], 'd:' .. ARGV[5], kid, kid .. ':digest', ARGV[5],
  kid .. ':name', 'default', kid .. ':created', ARGV[4])
return 1
