-- add_key.lua: adds a key to an account (AccountAdmin::add_key), once its
-- index ({prefix}apikey:<sha256>) was claimed.
-- KEYS[1]  the account hash, KEYS[2] the account's keys hash
-- ARGV     key id, name, created (ms), SHA-256 of the key (hex)
-- Reply    'ok', 'missing' (no account) or 'exists' (the id is taken).
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
name_first_key(KEYS[1], KEYS[2])
if redis.call('HEXISTS', KEYS[2], ARGV[1] .. ':digest') == 1 then return 'exists' end
redis.call('HSET', KEYS[2], 'd:' .. ARGV[4], ARGV[1], ARGV[1] .. ':digest', ARGV[4],
  ARGV[1] .. ':name', ARGV[2], ARGV[1] .. ':created', ARGV[3])
return 'ok'
