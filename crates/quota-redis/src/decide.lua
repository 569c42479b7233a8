-- decide.lua: one multi-limit decision, atomically, in one round trip.
--
-- A line-by-line port of quota-core's algorithm module
-- (crates/quota-core/src/algorithm/*.rs). Each function below names the Rust
-- function it mirrors; a change there must be made here too (the
-- differential test in crates/quota-redis/tests/differential.rs checks that
-- both stores answer identically).
--
-- Like quota_core::MemoryStore::run, it evaluates every limit first and
-- commits only if all of them admit, so a refused request consumes nothing.
-- A Redis script runs atomically, so no other decision interleaves.
--
-- Numbers: Lua numbers are doubles. Policy validation keeps
-- count * window_ms <= 2^52, so every value below stays an exact integer
-- (< 2^53); division goes through idiv (exact floor division) and numbers
-- sent back to Redis go through fmt (no exponent notation).
--
-- KEYS[i]        the state key of limit i (every key of one account shares a hash tag)
-- ARGV[1]        "1": commit when every limit admits (Store::decide); "0": evaluate only (Store::peek)
-- ARGV[2]        the caller's now in ms since the epoch, or "" to read Redis TIME
-- ARGV[3]        cost (1 <= cost <= every count, checked by Policy::plan)
-- ARGV[4]        TTL grace in ms, added to the moment a key stops counting
-- ARGV[2 + 3i .. 4 + 3i]   limit i: algorithm ("f", "l", "w", "g"), count, window_ms
--
-- Reply: { now, admits_1, remaining_1, reset_after_ms_1, retry_after_ms_1, admits_2, ... }
--
-- State representations (see the crate docs):
--   f  fixed_window    string "window:used"
--   w  sliding_window  string "window:previous:current"
--   g  gcra            string "tat"
--   l  sliding_log     sorted set, one member per admitted unit: score = time (ms),
--                      member = "time:n" (n = 1, 2, ... among the members of that time)

local commit_wanted = ARGV[1] == '1'
local now = tonumber(ARGV[2])
if now == nil then
  -- One clock for every gateway: Redis TIME (seconds, microseconds).
  -- Redis 5+ replicates scripts by their effects, which lets a script write
  -- after reading TIME; before 5 that had to be asked for (a no-op since 7).
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local cost = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])

-- Exact floor division of non-negative integers below 2^53.
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

-- u64::saturating_sub
local function sat_sub(a, b)
  if a > b then return a - b end
  return 0
end

-- Writes a string state with a TTL reaching `expires_at` (Limit::expires_at)
-- plus the grace, relative to `now`, so it also holds with the caller's clock.
local function store(key, value, expires_at)
  local ttl = expires_at - now + grace
  if ttl < 1 then ttl = 1 end
  redis.call('SET', key, value, 'PX', fmt(ttl))
end

local function bad_state(key)
  return redis.error_reply('quota: unreadable state in key ' .. key)
end

---------------------------------------------------------------------------
-- fixed_window.rs

-- fixed_window::used_now
local function fixed_used_now(key, w)
  local current = idiv(now, w)
  local v = redis.call('GET', key)
  if v then
    local window, used = string.match(v, '^(%d+):(%d+)$')
    if window == nil then return nil end
    window, used = tonumber(window), tonumber(used)
    if window >= current then return window, used end
  end
  return current, 0
end

-- fixed_window::evaluate
local function fixed_evaluate(key, n, w)
  local window, used = fixed_used_now(key, w)
  if window == nil then return nil end
  local reset_after = sat_sub((window + 1) * w, now)
  if used + cost <= n then
    return { 1, n - used - cost, reset_after, 0 }
  end
  return { 0, sat_sub(n, used), reset_after, math.max(reset_after, 1) }
end

-- fixed_window::commit, with Limit::expires_at = (window + 1) * w
local function fixed_commit(key, n, w)
  local window, used = fixed_used_now(key, w)
  store(key, fmt(window) .. ':' .. fmt(used + cost), (window + 1) * w)
end

---------------------------------------------------------------------------
-- sliding_window.rs

-- sliding_window::counts_now
local function counts_now(key, w)
  local idx = idiv(now, w)
  local v = redis.call('GET', key)
  if v then
    local window, previous, current = string.match(v, '^(%d+):(%d+):(%d+)$')
    if window == nil then return nil end
    window, previous, current = tonumber(window), tonumber(previous), tonumber(current)
    if window >= idx then return window, previous, current end
    if window + 1 == idx then return idx, current, 0 end
  end
  return idx, 0, 0
end

-- sliding_window::evaluate
local function counter_evaluate(key, n, w)
  local idx, prev, cur = counts_now(key, w)
  if idx == nil then return nil end
  local start = idx * w
  local e = math.min(sat_sub(now, start), w - 1)
  local weighted_prev = prev * (w - e)
  local budget = n * w
  local reset_after
  if cur > 0 then
    reset_after = 2 * w - e
  elseif prev > 0 then
    reset_after = w - e
  else
    reset_after = 0
  end
  if weighted_prev + (cur + cost) * w <= budget then
    local left = budget - weighted_prev - (cur + cost) * w
    if cur + cost > 0 then reset_after = 2 * w - e end
    return { 1, idiv(left, w), reset_after, 0 }
  end
  local remaining = idiv(sat_sub(budget, weighted_prev + cur * w), w)
  -- Earliest admission inside the current window: p * (W - e') <= (N - c - k) * W.
  local retry_after = nil
  if cur + cost <= n and prev > 0 then
    local e_min = w - math.min(idiv((n - cur - cost) * w, prev), w)
    if e_min < w then retry_after = e_min - e end
  end
  -- Otherwise in the next window, where the current count becomes previous:
  -- c * (W - e'') <= (N - k) * W.
  if retry_after == nil then
    local e_next = 0
    if cur > 0 then e_next = w - math.min(idiv((n - cost) * w, cur), w) end
    retry_after = (w - e) + e_next
  end
  return { 0, remaining, reset_after, math.max(retry_after, 1) }
end

-- sliding_window::commit, with Limit::expires_at = (window + 2) * w (current > 0)
local function counter_commit(key, n, w)
  local window, previous, current = counts_now(key, w)
  store(key, fmt(window) .. ':' .. fmt(previous) .. ':' .. fmt(current + cost), (window + 2) * w)
end

---------------------------------------------------------------------------
-- gcra.rs

-- gcra::emission_interval: ceil(W / N)
local function emission_interval(n, w)
  return idiv(w + n - 1, n)
end

-- gcra::tat
local function read_tat(key)
  local v = redis.call('GET', key)
  if not v then return 0 end
  if string.match(v, '^%d+$') == nil then return nil end
  return tonumber(v)
end

-- gcra::evaluate
local function gcra_evaluate(key, n, w)
  local tat = read_tat(key)
  if tat == nil then return nil end
  local t = emission_interval(n, w)
  local tolerance = n * t
  local base = math.max(tat, now)
  local new_tat = base + cost * t
  local used = base - now
  if new_tat - now <= tolerance then
    return { 1, idiv(tolerance - (new_tat - now), t), new_tat - now, 0 }
  end
  return { 0, idiv(sat_sub(tolerance, used), t), used, new_tat - tolerance - now }
end

-- gcra::commit, with Limit::expires_at = tat
local function gcra_commit(key, n, w)
  local t = emission_interval(n, w)
  local tat = math.max(read_tat(key), now) + cost * t
  store(key, fmt(tat), tat)
end

---------------------------------------------------------------------------
-- sliding_log.rs: a unit logged at t counts while now < t + W.

-- sliding_log::evaluate
local function log_evaluate(key, n, w)
  local live_from = '(' .. fmt(now - w)
  local used = redis.call('ZCOUNT', key, live_from, '+inf')
  if used + cost <= n then
    return { 1, n - used - cost, w, 0 }
  end
  local reset_after = 0
  if used > 0 then
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset_after = sat_sub(tonumber(newest[2]) + w, now)
  end
  -- The (used + cost - count)-th oldest live unit must expire first.
  local must_expire = used + cost - n
  local retry_after = w
  local oldest = redis.call('ZRANGEBYSCORE', key, live_from, '+inf', 'WITHSCORES', 'LIMIT', must_expire - 1, 1)
  if oldest[2] then retry_after = sat_sub(tonumber(oldest[2]) + w, now) end
  return { 0, sat_sub(n, used), reset_after, math.max(retry_after, 1) }
end

-- sliding_log::commit, with Limit::expires_at = newest + W
local function log_commit(key, n, w)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - w))
  -- Members of one time are added and removed together, so the count of
  -- members at `now` numbers the new ones uniquely.
  local seq = redis.call('ZCOUNT', key, fmt(now), fmt(now))
  local at = fmt(now)
  local args = {}
  for i = 1, cost do
    args[#args + 1] = at
    args[#args + 1] = at .. ':' .. fmt(seq + i)
    if #args >= 1000 then
      redis.call('ZADD', key, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('ZADD', key, unpack(args)) end
  local newest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
  local ttl = newest + w - now + grace
  if ttl < 1 then ttl = 1 end
  redis.call('PEXPIRE', key, fmt(ttl))
end

---------------------------------------------------------------------------
-- Limit::evaluate / Limit::commit dispatch, and MemoryStore::run.

local evaluate = { f = fixed_evaluate, w = counter_evaluate, g = gcra_evaluate, l = log_evaluate }
local commit = { f = fixed_commit, w = counter_commit, g = gcra_commit, l = log_commit }

local reply = { now }
local all_admit = true
for i = 1, #KEYS do
  local alg = ARGV[2 + 3 * i]
  local n = tonumber(ARGV[3 + 3 * i])
  local w = tonumber(ARGV[4 + 3 * i])
  local step = evaluate[alg]
  if step == nil then
    return redis.error_reply('quota: unknown algorithm ' .. tostring(alg))
  end
  local o = step(KEYS[i], n, w)
  if o == nil then return bad_state(KEYS[i]) end
  if o[1] == 0 then all_admit = false end
  for j = 1, 4 do reply[#reply + 1] = o[j] end
end

if commit_wanted and all_admit then
  for i = 1, #KEYS do
    commit[ARGV[2 + 3 * i]](KEYS[i], tonumber(ARGV[3 + 3 * i]), tonumber(ARGV[4 + 3 * i]))
  end
end

return reply
