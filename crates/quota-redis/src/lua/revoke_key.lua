-- revoke_key.lua: deletes a key of an account (AccountAdmin::revoke_key); the
-- caller then deletes its index. It stops resolving at once: resolve.lua reads
-- the keys hash on every request, on every node.
-- KEYS[1]  the account hash, KEYS[2] the account's keys hash
-- ARGV     key id
-- Reply    the key's SHA-256 (hex); 'missing' (no account) or 'nokey'.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
name_first_key(KEYS[1], KEYS[2])
local d = redis.call('HGET', KEYS[2], ARGV[1] .. ':digest')
if not d then return 'nokey' end
redis.call('HDEL', KEYS[2], 'd:' .. d, ARGV[1] .. ':digest', ARGV[1] .. ':name',
  ARGV[1] .. ':created', ARGV[1] .. ':expires', ARGV[1] .. ':used')
return d
