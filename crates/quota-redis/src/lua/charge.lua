-- charge.lua: debits a price if the credit can pay it (Accounts::charge).
-- KEYS[1]  the account hash
-- ARGV[1]  the price in micro-dollars (decimal, no leading zeros)
-- Reply    {"missing"} | {"short", credit} | {"charged", credit left}
-- Amounts are compared as decimal strings and changed with HINCRBY, so they
-- stay exact 64-bit integers (Lua numbers would lose precision past 2^53).
local function lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local credit = redis.call('HGET', KEYS[1], 'credit')
if not credit then return { 'missing' } end
local price = ARGV[1]
if lt(credit, price) then return { 'short', credit } end
if price ~= '0' then
  redis.call('HINCRBY', KEYS[1], 'credit', '-' .. price)
  redis.call('HINCRBY', KEYS[1], 'spent', price)
end
redis.call('HINCRBY', KEYS[1], 'requests', 1)
return { 'charged', redis.call('HGET', KEYS[1], 'credit') }
