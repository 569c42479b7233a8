-- give_back.lua: gives back what one admitted decision counted, atomically,
-- in one round trip (Store::refund).
--
-- A line-by-line port of the refund arithmetic of quota-core's algorithm
-- module (the `refunded` functions of crates/quota-core/src/algorithm/*.rs,
-- and Limit::refund); a change there must be made here too. The
-- conformance suite (crates/quota-redis/tests/conformance/) checks that the
-- memory store and this script give back the same.
--
-- KEYS[i]        the state key of limit i (as decide.lua's)
-- ARGV[1]        the caller's now in ms since the epoch, or "" to read Redis TIME
-- ARGV[2]        when the decision was taken (ms; decide.lua's reply[1])
-- ARGV[3]        cost
-- ARGV[4i .. 3 + 4i]   limit i: algorithm ("f", "l", "w", "g"), count,
--                      window_ms, and the decision's reset_after_ms for it
--
-- Reply: { now, keys changed }. A key that is gone counts nothing to give
-- back; a key's TTL is kept (a state that counts less never expires later).

local now = tonumber(ARGV[1])
if now == nil then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local at = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local function fmt(n)
  return string.format('%.0f', n)
end

local function sat_sub(a, b)
  if a > b then return a - b end
  return 0
end

-- Writes a string state, keeping the key's TTL.
local function keep(key, value)
  local ttl = redis.call('PTTL', key)
  if ttl > 0 then
    redis.call('SET', key, value, 'PX', ttl)
  else
    redis.call('SET', key, value)
  end
end

local function bad_state(key)
  return redis.error_reply('quota: unreadable state in key ' .. key)
end

-- fixed_window::refunded: only from the window that counted the units,
-- which ends at at + reset_after.
local function fixed_refund(key, n, w, reset_after)
  local v = redis.call('GET', key)
  if not v then return 0 end
  local window, used = string.match(v, '^(%d+):(%d+)$')
  if window == nil then return nil end
  window, used = tonumber(window), tonumber(used)
  if (window + 1) * w ~= at + reset_after then return 0 end
  keep(key, fmt(window) .. ':' .. fmt(sat_sub(used, cost)))
  return 1
end

-- sliding_window::refunded (and counted_in)
local function counter_refund(key, n, w, reset_after)
  local idx = idiv(at, w)
  local e = math.min(at - idx * w, w - 1)
  if reset_after ~= 2 * w - e then return 0 end
  local v = redis.call('GET', key)
  if not v then return 0 end
  local window, previous, current = string.match(v, '^(%d+):(%d+):(%d+)$')
  if window == nil then return nil end
  window, previous, current = tonumber(window), tonumber(previous), tonumber(current)
  if window == idx then
    current = sat_sub(current, cost)
  elseif window == idx + 1 then
    previous = sat_sub(previous, cost)
  else
    return 0
  end
  keep(key, fmt(window) .. ':' .. fmt(previous) .. ':' .. fmt(current))
  return 1
end

-- gcra::refunded
local function gcra_refund(key, n, w, reset_after)
  local v = redis.call('GET', key)
  if not v then return 0 end
  if string.match(v, '^%d+$') == nil then return nil end
  local tat = tonumber(v)
  local a = at + reset_after
  if tat < a then return 0 end
  local t = idiv(w + n - 1, n)
  local room = math.min(cost * t, sat_sub(a, now))
  keep(key, fmt(tat - room))
  return 1
end

-- sliding_log::refund: the members logged at `at` with the highest
-- numbers (so the next ones logged at that time stay numbered uniquely).
local function log_refund(key, n, w, reset_after)
  local members = redis.call('ZRANGEBYSCORE', key, fmt(at), fmt(at))
  if #members == 0 then return 0 end
  local seqs = {}
  for i = 1, #members do
    local s = string.match(members[i], '^%d+:(%d+)$')
    if s == nil then return nil end
    seqs[#seqs + 1] = tonumber(s)
  end
  table.sort(seqs, function(x, y) return x > y end)
  local gone = {}
  for i = 1, math.min(cost, #seqs) do
    gone[#gone + 1] = fmt(at) .. ':' .. fmt(seqs[i])
  end
  redis.call('ZREM', key, unpack(gone))
  return 1
end

local refund = { f = fixed_refund, w = counter_refund, g = gcra_refund, l = log_refund }

-- Every key is read and checked first: an unreadable one changes nothing.
for i = 1, #KEYS do
  local alg = ARGV[4 * i]
  if refund[alg] == nil then
    return redis.error_reply('quota: unknown algorithm ' .. tostring(alg))
  end
  local v = nil
  if alg == 'l' then
    local members = redis.call('ZRANGEBYSCORE', KEYS[i], fmt(at), fmt(at))
    for j = 1, #members do
      if string.match(members[j], '^%d+:%d+$') == nil then return bad_state(KEYS[i]) end
    end
  else
    v = redis.call('GET', KEYS[i])
  end
  if v and alg == 'f' and string.match(v, '^(%d+):(%d+)$') == nil then return bad_state(KEYS[i]) end
  if v and alg == 'w' and string.match(v, '^(%d+):(%d+):(%d+)$') == nil then return bad_state(KEYS[i]) end
  if v and alg == 'g' and string.match(v, '^%d+$') == nil then return bad_state(KEYS[i]) end
end

local changed = 0
for i = 1, #KEYS do
  local alg = ARGV[4 * i]
  local n = tonumber(ARGV[4 * i + 1])
  local w = tonumber(ARGV[4 * i + 2])
  local reset_after = tonumber(ARGV[4 * i + 3])
  local r = refund[alg](KEYS[i], n, w, reset_after)
  if r == nil then return bad_state(KEYS[i]) end
  changed = changed + r
end

return { now, changed }
