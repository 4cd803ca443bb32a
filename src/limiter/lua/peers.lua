-- close-gateway registry of the windows every replica serves (src/limiter/peers.rs, whose
-- exchange_in holds the same rules for the in-process state; change both together).
-- KEYS[1] the registry hash, one per key pool: {cgw:peers:<format>:<pool>}.
-- ARGV[1] "" (use TIME) or a test clock in microseconds; ARGV[2] how long an entry lives,
-- microseconds; ARGV[3] what starts the calling replica's fields ("<replica>\n"); then per
-- entry: field ("<replica>\n<slot>\n<state>\n<group>"), limit, window end in microseconds
-- from now (negative: past), the counts seen in the window ("3.5.8").
-- Stores "<expiry>,<limit>,<end>,<counts>" in Redis's clock, forgets expired entries, and
-- returns {now, field, value, field, value, ...} of every live entry of other replicas.

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local ttl = tonumber(ARGV[2])
local own = ARGV[3]
local function fmt(x) return string.format('%.0f', x) end

for i = 4, #ARGV - 3, 4 do
  local value = fmt(now + ttl) .. ',' .. ARGV[i + 1] .. ',' .. fmt(now + tonumber(ARGV[i + 2])) ..
    ',' .. ARGV[i + 3]
  redis.call('HSET', KEYS[1], ARGV[i], value)
end

local out = {fmt(now)}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local expiry = tonumber(string.match(all[i + 1], '^(%-?%d+),'))
  if expiry == nil or expiry <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif string.sub(all[i], 1, #own) ~= own then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
-- Entries expire one by one above; the key itself outlives the last entry written by twice
-- its lifetime and a second, so a pool nobody serves any more leaves nothing behind.
redis.call('PEXPIRE', KEYS[1], math.floor(ttl / 1000) * 2 + 1000)
return out
