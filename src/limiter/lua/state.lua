-- close-gateway limiter: one atomic step on one endpoint group's shared state.
-- A line-by-line translation of src/limiter/policy.rs and policy/ (same names, integer
-- microseconds); script_tests.rs runs both on the same steps. Change both together.
-- The script is these four files run as one, in order (redis.rs, SCRIPT):
--   state.lua    arguments, parameters, bucket fields, helpers;
--   slot.lua     the room of a window and one slot of it (policy.rs, room.rs, slot.rs);
--   shared.lua   buckets, organization, demand, lines of asks, acquire (demand.rs);
--   observe.lua  learning and reconciliation (learn.rs), then the operation itself.
--
-- KEYS[1] demand hash, KEYS[2] organization bucket, KEYS[3..] one bucket per API key; all
-- share one hash tag {cgw:<version>:<pool>:<group>} so the script runs on Redis Cluster.
-- ARGV[1] "acquire" | "observe" | "join" | "adopt" | "leave"; ARGV[2] "" (use TIME) or a test clock in microseconds;
-- ARGV[3] 1 when the organization bucket is used; ARGV[4..18] parameters; ARGV[19..] the
-- operation's arguments (see redis.rs).
-- Returns, as strings, {now, kind (0 wait, 1 granted, 2 no ask), till, why, lim, win, lsrc, lat, remaining, pause, n429,
-- interval, demand high, normal, low, then key, at, seq, oseq, probe per grant, or the host after
-- why 6 (moved)}; join answers {now, from}, adopt and leave {now}. The host of a moved
-- group is the string field 'host' of its first key's hash.

local HIGH, LOW = 0, 2
local FIELDS = {'lim', 'win', 'lsrc', 'lat', 'lexp', 'end', 'cap', 'seq', 'conf', 'base', 'cmax', 'nobs',
  'n0', 'n1', 'n2', 'pause', 'probe', 'rtt', 'n429', 'nh', 'nn', 'ph', 'pn', 'hist', 'tobs', 'fres',
  'pcmax', 'pnobs', 'pbase', 'ptobs', 'omax', 'tog', 'nstr', 'kin', 'moved', 'adopt', 'short'}

local function idiv(a, b) return math.floor(a / b) end
local function max(a, b) if a > b then return a end return b end
local function min(a, b) if a < b then return a end return b end
local function fmt(x) return string.format('%.0f', x) end

local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local use_org = ARGV[3] == '1'
local p = {}
local names = {'margin_pm', 'share', 'guard_min', 'h1', 'h2', 'reserve_high', 'probe_timeout',
  'learned_ttl', 'default_limit', 'default_window', 'default_pause', 'demand_ttl', 'org_limit',
  'org_mult', 'ask_gap'}
for i, name in ipairs(names) do p[name] = tonumber(ARGV[3 + i]) end
local horizon = {[0] = 0, [1] = p.h1, [2] = p.h2}
local A = 18
local ttl_ms = idiv(p.learned_ttl, 1000) + 60000

local function load(key)
  local raw = redis.call('HGETALL', key)
  local b = {}
  for _, f in ipairs(FIELDS) do b[f] = 0 end
  for i = 1, #raw, 2 do b[raw[i]] = tonumber(raw[i + 1]) or 0 end
  return b
end

local function save(key, b)
  local args = {}
  for _, f in ipairs(FIELDS) do
    args[#args + 1] = f
    args[#args + 1] = fmt(b[f])
  end
  redis.call('HSET', key, unpack(args))
  redis.call('PEXPIRE', key, ttl_ms)
end

local function eff(lim)
  local margin = idiv(lim * p.margin_pm, 1000)
  return max(idiv(lim - margin, max(p.share, 1)), 1)
end

-- See policy.rs: the nominal time between two admissions.
local function token(b) return idiv(b.win, eff(b.lim)) end

local function forget_expired(b)
  if b.lsrc == 2 and now >= b.lexp then
    b.lim = 0
    b.lsrc = 0
  end
end
