-- refund.lua: gives back a charge (Accounts::refund).
-- KEYS[1]  the account hash
-- ARGV[1]  the amount in micro-dollars (decimal, no leading zeros)
-- Reply    1, or 0 when the account does not exist.
local function lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local amount = ARGV[1]
if amount ~= '0' then
  redis.call('HINCRBY', KEYS[1], 'credit', amount)
  local spent = redis.call('HGET', KEYS[1], 'spent') or '0'
  if lt(spent, amount) then
    redis.call('HSET', KEYS[1], 'spent', '0')
  else
    redis.call('HINCRBY', KEYS[1], 'spent', '-' .. amount)
  end
end
if tonumber(redis.call('HGET', KEYS[1], 'requests') or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'requests', -1)
end
return 1
