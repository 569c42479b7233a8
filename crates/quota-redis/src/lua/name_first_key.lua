-- name_first_key.lua: prepended to every script that reads an account's keys.
-- An account written before named keys kept the SHA-256 of its one API key in
-- the account hash's field `key`; it becomes the account's first named key
-- (id `key_` and 12 hex digits of the digest, name `default`, created with the
-- account) in the keys hash, and the field is deleted. A SHA-1 digest (40 hex
-- digits, older still) is left for RedisAccounts::resolve to move first.
local function name_first_key(account, keys)
  local d = redis.call('HGET', account, 'key')
  if not d or #d ~= 64 then return end
  if redis.call('HEXISTS', keys, 'd:' .. d) == 0 then
    local kid = 'key_' .. string.sub(d, 1, 12)
    local created = redis.call('HGET', account, 'created_at') or '0'
    redis.call('HSET', keys, 'd:' .. d, kid, kid .. ':digest', d, kid .. ':name', 'default',
      kid .. ':created', created)
  end
  redis.call('HDEL', account, 'key')
end
