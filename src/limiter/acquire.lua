-- close-gateway limiter: one atomic step on one endpoint group's shared state.
-- A line-by-line translation of src/limiter/policy.rs (same names, integer microseconds);
-- script_tests.rs runs both on the same steps. Change both together.
--
-- KEYS[1] demand hash, KEYS[2] organization bucket, KEYS[3..] one bucket per API key; all
-- share one hash tag {cgw:<pool>:<group>} so the script runs on Redis Cluster.
-- ARGV[1] "acquire" | "observe"; ARGV[2] "" (use TIME) or a test clock in microseconds;
-- ARGV[3] 1 when the organization bucket is used; ARGV[4..18] parameters; ARGV[19..] the
-- operation's arguments (see redis.rs).
-- Returns, as strings, {now, kind (0 wait, 1 granted, 2 no ask), till, why, lim, win, lsrc, lat, remaining, pause, n429,
-- interval, demand high, normal, low, then key, at, seq, probe per grant}.

local HIGH, LOW = 0, 2
local FIELDS = {'lim', 'win', 'lsrc', 'lat', 'lexp', 'end', 'cap', 'seq', 'conf', 'base', 'cmax', 'nobs',
  'n0', 'n1', 'n2', 'pause', 'probe', 'rtt', 'n429', 'nh', 'nn', 'ph', 'pn', 'hist', 'tobs', 'fres',
  'pcmax', 'pnobs', 'pbase', 'ptobs', 'omax', 'tog', 'nstr'}

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

-- See policy.rs: room kept for what others took in the previous window.
local function reserve(b)
  local others = max(b.pcmax - b.pnobs, 0)
  if others == 0 then return 0 end
  local e = b['end'] - b.win
  local seen = max(min(max(b.ptobs - (e - b.win), idiv(b.win, 4)), b.win), 1)
  local after = min(max(e - b.ptobs, 0), b.win)
  local spare = max(eff(b.lim) - b.pcmax, 0)
  local unseen = min(idiv(min(others, 100000) * after + seen - 1, seen), spare)
  return others + unseen + idiv(spare - unseen + 1, 2)
end

local function room(b)
  local full = eff(b.lim)
  return max(max(full - b.fres, idiv(full, 8)), 1)
end

local function roll(b)
  if b.lim == 0 or now < b['end'] then return end
  local nxt = now < b['end'] + b.win
  if nxt then b['end'] = b['end'] + b.win else b['end'] = now + b.win end
  if nxt then
    b.hist, b.ph, b.pn = 1, b.nh, b.nn
  else
    b.hist, b.ph, b.pn = 0, 0, 0
  end
  b.nh, b.nn = 0, 0
  if nxt then b.pcmax, b.pnobs = b.cmax, b.nobs + b.nstr else b.pcmax, b.pnobs = 0, 0 end
  b.pbase = b.base
  b.ptobs = b.tobs
  b.fres = reserve(b)
  b.cap = b.seq + room(b)
  b.conf = 0
  b.base = b.seq
  b.cmax = 0
  b.nobs = 0
  b.omax = 0
  b.tog = 0
  b.nstr = 0
end

-- See room.rs: more urgent admissions a window is expected to have.
local function expected_before(b, prio)
  local before = b.ph
  if prio == LOW then before = before + b.pn end
  if b.hist == 0 then before = idiv(eff(b.lim), 8) end
  return min(max(before, 0), 100000)
end

-- See room.rs: room a booking ahead must leave for more urgent calls.
local function keep(b, stop, prio, d_hi)
  local before = expected_before(b, prio)
  local left = min(max(stop - now, 0), b.win)
  local expected = 0
  if b.win > 0 then expected = idiv(before * left + b.win - 1, b.win) end
  return p.reserve_high + d_hi + expected
end

-- See room.rs: from when the last of the kept room goes to anyone.
local function kept_last(b, stop)
  return stop - idiv(token(b), 2)
end

-- See room.rs: when `keep` leaves a booking at `prio` free.
local function kept_until(b, stop, rem, prio, d_hi)
  local last = kept_last(b, stop)
  local before = expected_before(b, prio)
  local free = rem - 1 - p.reserve_high - d_hi
  if free < 0 or before <= 0 then return last end
  free = min(free, 100000)
  return min(stop - idiv(free * b.win, before), last)
end

-- See learn.rs: others take room Close announced to us too, with no reserve kept for them.
local function crowded(b)
  return (b.hist == 0 or b.fres > 0) and b.omax - b.nstr >= b.fres + 2
end

-- Returns slot {at, stop, rem, probe} or nil, till, why.
local function candidate(b, prio, max_wait, d_hi)
  if b.pause > now then return nil, b.pause, 1 end
  if b.lim == 0 then
    if b.probe > now then return nil, b.probe, 2 end
    return {at = now, stop = now, rem = 1, probe = true}
  end
  roll(b)
  local rem = b.cap - b.seq
  if rem <= 0 then
    if crowded(b) then return nil, min(now + token(b), b['end']), 3 end
    return nil, b['end'], 3
  end
  local guard = min(max(b.rtt, p.guard_min), idiv(b.win, 4))
  local stop = b['end'] - guard
  local at = max(now, b['n' .. prio])
  if at >= stop then return nil, b['end'], 3 end
  local step = idiv(stop - at, rem)
  if rem <= d_hi then return nil, min(now + 2 * max(step, 1), b['end']), 5 end
  local unsure = b.conf == 0 or b.hist == 0 or b.fres > 0 or b.cmax > b.nobs
  local ahead = horizon[max(prio, 1)] * step
  if crowded(b) then ahead = step end
  if prio == HIGH and unsure and at > now + ahead then return nil, at - ahead, 4 end
  if prio ~= HIGH then
    local short = rem - 1 < keep(b, stop, prio, d_hi)
    if at > now + ahead and (unsure or short) then return nil, at - ahead, 4 end
    local short_high = rem - 1 < keep(b, stop, 1, d_hi)
    if short_high and now < kept_last(b, stop) then
      return nil, kept_until(b, stop, rem, 1, d_hi), 4
    end
  end
  if at > now + max_wait then return nil, at, 3 end
  return {at = at, stop = stop, rem = rem, probe = false}
end

local function commit(b, slot, prio)
  b.seq = b.seq + 1
  if prio == HIGH then b.nh = b.nh + 1 elseif prio == 1 then b.nn = b.nn + 1 end
  if slot.probe then
    b.probe = now + p.probe_timeout
    return
  end
  for q = prio, LOW do
    local f = 'n' .. q
    local from = max(b[f], slot.at)
    if from < slot.stop then
      local step = idiv(slot.stop - from, slot.rem)
      if q == HIGH then step = min(step, token(b)) end
      b[f] = from + step
    end
  end
end

local keys, org = {}, nil
for i = 3, #KEYS do
  keys[#keys + 1] = load(KEYS[i])
  forget_expired(keys[#keys])
end
if use_org then org = load(KEYS[2]) end

local function sync_org()
  if org == nil then return end
  local smallest, win, e = 0, 0, 0
  for _, key in ipairs(keys) do
    if key.lim > 0 and (smallest == 0 or key.lim < smallest) then smallest = key.lim end
    win = max(win, key.win)
    if key['end'] > now and (e == 0 or key['end'] < e) then e = key['end'] end
  end
  if org.lsrc ~= 2 then
    if p.org_limit > 0 and smallest > 0 then org.lim = p.org_limit else org.lim = smallest * p.org_mult end
    org.win = win
  end
  if org.lim > 0 and org['end'] == 0 then
    if e > 0 then org['end'] = e else org['end'] = now + org.win end
    org.cap = eff(org.lim)
  end
end

-- Demand: field per replica, value "high,normal,low,expiry,ticket"; field "~tick" holds the
-- next free time of each priority's line of asks, "t0,t1,t2" (see policy/demand.rs).
local demand = {}
local tick = {[0] = 0, [1] = 0, [2] = 0}
local demand_me = nil
local function update_demand(replica, d)
  local raw = redis.call('HGETALL', KEYS[1])
  for i = 1, #raw, 2 do
    if raw[i] == '~tick' then
      local t0, t1, t2 = string.match(raw[i + 1], '^(%d+),(%d+),(%d+)$')
      if t0 ~= nil then tick = {[0] = tonumber(t0), [1] = tonumber(t1), [2] = tonumber(t2)} end
    else
      local h, n, l, exp, t = string.match(raw[i + 1], '^(%d+),(%d+),(%d+),(%d+),(%d+)$')
      if exp ~= nil and tonumber(exp) > now then
        demand[raw[i]] = {tonumber(h), tonumber(n), tonumber(l), exp = tonumber(exp), ticket = tonumber(t)}
      else
        redis.call('HDEL', KEYS[1], raw[i])
      end
    end
  end
  demand_me = replica
  if d[1] == 0 and d[2] == 0 and d[3] == 0 then
    demand[replica] = nil
    return
  end
  local till = now
  for _, key in ipairs(keys) do till = max(till, key['end']) end
  local e = demand[replica]
  if e == nil then
    e = {0, 0, 0, exp = 0, ticket = 0}
    demand[replica] = e
  end
  e[1], e[2], e[3] = d[1], d[2], d[3]
  e.exp = till + p.demand_ttl
end

local function save_demand()
  local e = demand[demand_me]
  if e == nil then
    redis.call('HDEL', KEYS[1], demand_me)
  else
    redis.call('HSET', KEYS[1], demand_me,
      fmt(e[1]) .. ',' .. fmt(e[2]) .. ',' .. fmt(e[3]) .. ',' .. fmt(e.exp) .. ',' .. fmt(e.ticket))
  end
  redis.call('HSET', KEYS[1], '~tick', fmt(tick[0]) .. ',' .. fmt(tick[1]) .. ',' .. fmt(tick[2]))
  local till = now
  for _, key in ipairs(keys) do till = max(till, key['end']) end
  redis.call('PEXPIRE', KEYS[1], idiv(till - now + p.demand_ttl, 1000) + 1000)
end

local function higher_demand(replica, prio)
  local total = 0
  for name, counts in pairs(demand) do
    if name ~= replica then
      for q = 1, prio do total = total + counts[q] end
    end
  end
  return total
end

local function remaining(b)
  if b.lim == 0 then return 0 end
  if now >= b['end'] then return eff(b.lim) end
  return max(b.cap - b.seq, 0)
end

local function view()
  local v = {lim = 0, win = 0, lsrc = 0, lat = 0, remaining = 0, pause = 0, n429 = 0, interval = 0}
  for _, key in ipairs(keys) do
    v.lim = v.lim + key.lim
    v.win = max(v.win, key.win)
    if v.lsrc == 0 then v.lsrc = key.lsrc else v.lsrc = min(v.lsrc, key.lsrc) end
    v.lat = max(v.lat, key.lat)
    v.remaining = v.remaining + remaining(key)
    v.pause = max(v.pause, key.pause)
    v.n429 = v.n429 + key.n429
  end
  if org ~= nil and org.lim > 0 then
    v.lim = min(v.lim, org.lim)
    v.remaining = min(v.remaining, remaining(org))
    v.pause = max(v.pause, org.pause)
  end
  if v.lim > 0 then v.interval = idiv(v.win, eff(v.lim)) end
  local d = {0, 0, 0}
  for _, counts in pairs(demand) do
    for q = 1, 3 do d[q] = d[q] + counts[q] end
  end
  return {v.lim, v.win, v.lsrc, v.lat, v.remaining, v.pause, v.n429, v.interval, d[1], d[2], d[3]}
end

local function save_all()
  for i, key in ipairs(keys) do save(KEYS[i + 2], key) end
  if org ~= nil then save(KEYS[2], org) end
  save_demand()
end

local function reply(granted, till, why, grants)
  local out = {fmt(now), fmt(granted), fmt(till), fmt(why)}
  for _, x in ipairs(view()) do out[#out + 1] = fmt(x) end
  for _, g in ipairs(grants) do
    for _, x in ipairs(g) do out[#out + 1] = fmt(x) end
  end
  return out
end

-- See policy/demand.rs: the line of asks per priority.
local function gap()
  local lim, win = 0, 0
  for _, key in ipairs(keys) do
    lim = lim + key.lim
    win = max(win, key.win)
  end
  if org ~= nil and org.lim > 0 then lim = min(lim, org.lim) end
  if lim <= 0 then return 0 end
  return p.ask_gap * idiv(win, eff(lim))
end

local function leave_line(prio, replica, granted)
  local e = demand[replica]
  if e == nil then return end
  e[prio + 1] = max(e[prio + 1] - granted, 0)
  if prio ~= HIGH and e.ticket <= now then e.ticket = 0 end
end

local function next_ask(prio, replica, till, why)
  local g = gap()
  if prio == HIGH or g <= 0 or why == 1 or why == 2 then return till end
  local others = false
  for name, counts in pairs(demand) do
    if name ~= replica and counts[prio + 1] > 0 then others = true end
  end
  if not others then return till end
  local e = demand[replica]
  local held = 0
  if e ~= nil then held = e.ticket end
  if held > 0 and held + g > now then return max(till, held) end
  local at = max(max(till, tick[prio]), now)
  tick[prio] = at + g
  if e ~= nil then e.ticket = at end
  return at
end

-- Books up to n slots on the key with the earliest room, within the organization cap.
local function acquire(prio, n, max_wait, replica, d)
  update_demand(replica, d)
  local d_hi = higher_demand(replica, prio)
  sync_org()
  local grants = {}
  local wait_till, wait_why = nil, 3
  while #grants < n do
    local best, best_i = nil, nil
    for i, key in ipairs(keys) do
      local slot, till, why = candidate(key, prio, max_wait, d_hi)
      if slot ~= nil then
        if best == nil or slot.at < best.at then best, best_i = slot, i end
      elseif wait_till == nil or till < wait_till then
        wait_till, wait_why = till, why
      end
    end
    if best == nil then break end
    if org ~= nil then
      if org.lim > 0 then
        roll(org)
        if org.pause > now then
          wait_till, wait_why = org.pause, 1
          break
        end
        if org.cap - org.seq <= 0 then
          wait_till, wait_why = org['end'], 3
          break
        end
      end
      org.seq = org.seq + 1
    end
    local key = keys[best_i]
    commit(key, best, prio)
    local probe = 0
    if best.probe then probe = 1 end
    grants[#grants + 1] = {best_i - 1, best.at, key.seq, probe}
  end
  if #grants == 0 then return 0, next_ask(prio, replica, wait_till or now, wait_why), wait_why, grants end
  leave_line(prio, replica, #grants)
  if #grants < n and wait_till ~= nil then
    return 1, next_ask(prio, replica, wait_till, wait_why), wait_why, grants
  end
  return 1, 0, 0, grants
end

-- Observe: what Close answered to one call.
local o = {}
local onames = {'key', 'seq', 'probe', 'status', 'limit', 'remaining', 'reset', 'window',
  'retry_after', 'org_typed', 'rtt', 'borrowed'}

local function learn(b)
  local was_learned = b.lsrc == 2
  if not was_learned or b.lim ~= o.limit then b.lat = now end
  b.lim = o.limit
  b.lsrc = 2
  b.lexp = now + p.learned_ttl
  if o.window > 0 then
    b.win = o.window
    return
  end
  if o.reset > 0 then
    local secs = idiv(o.reset + 999999, 1000000) * 1000000
    if was_learned then b.win = max(b.win, secs) else b.win = secs end
    return
  end
  if b.win == 0 then b.win = p.default_window end
end

-- See room.rs: the room kept for others shrinks once they take nothing more.
local function room_now(b, others)
  if b.fres == 0 or b.win <= 0 then return room(b) end
  local pace = idiv(b.win, b.fres)
  if others > 0 and b.tobs - b.tog <= 6 * pace then return room(b) end
  local full = eff(b.lim)
  local left = min(max(b['end'] - b.tobs, 0), b.win)
  local rest = idiv(min(b.fres, 100000) * left + b.win - 1, b.win)
  local kept = min(b.fres, others + rest)
  return max(max(full - kept, idiv(full, 8)), 1)
end

local function recap(b)
  local margin = idiv(b.lim * p.margin_pm, 1000)
  local others = max(b.cmax - b.nobs, 0)
  local r = min(room_now(b, others) - b.nstr, b.lim - margin - others)
  if crowded(b) then
    local left = b.lim - margin - b.cmax
    local theirs = 0
    local start = b['end'] - b.win
    local gap = idiv(max(b.tog - start, 0), max(b.omax, 1))
    if b.fres > 0 and b.tobs - b.tog <= 2 * gap then
      local gone = max(min(max(b.tobs - start, idiv(b.win, 8)), b.win), 1)
      local ahead = min(max(b['end'] - b.tobs, 0), b.win)
      theirs = idiv(min(b.omax, 100000) * ahead + gone - 1, gone)
    end
    r = min(r, b.nobs + max(min(idiv(left, 2), left - theirs), 0))
  end
  b.cap = b.base + r
end

-- See learn.rs: a late answer of the previous window.
local function previous(b)
  if o.remaining < 0 or b.hist == 0 then return end
  local limit = b.lim
  if o.limit > 0 then limit = o.limit end
  b.pcmax = max(b.pcmax, limit - o.remaining)
  b.ptobs = b['end'] - b.win
  if o.seq > b.pbase and o.seq <= b.base and o.status ~= 429 then b.pnobs = b.pnobs + 1 end
  b.fres = reserve(b)
  recap(b)
end

-- See policy.rs: others <= cmax - nobs.
local function reconcile(b)
  if b.lim == 0 then return end
  if b['end'] ~= 0 or o.reset < 0 then roll(b) end
  if o.reset >= 0 then
    local e = now + o.reset
    local half = idiv(b.win, 2)
    if b['end'] == 0 or e > b['end'] + half then
      b['end'] = e
      b.conf = 1
      b.base = o.seq - 1
      b.cmax = 0
      b.nobs = 0
      b.omax = 0
      b.tog = 0
          b.nstr = 0
      b.cap = b.base + room(b)
    elseif e < b['end'] - half then
      if e >= b['end'] - b.win - half then previous(b) end
      return
    elseif b.conf == 0 or e < b['end'] then
      b['end'] = e
      b.conf = 1
    end
  end
  if o.remaining < 0 then return end
  local limit = b.lim
  if o.limit > 0 then limit = o.limit end
  b.cmax = max(b.cmax, limit - o.remaining)
  b.tobs = now
  if o.seq > b.base and o.status ~= 429 then
    b.nobs = b.nobs + 1
  elseif o.seq > b.pbase and o.status ~= 429 then
    b.nstr = b.nstr + 1
  end
  if b.cmax - b.nobs > b.omax then
    b.omax = b.cmax - b.nobs
    b.tog = now
  end
  recap(b)
end

local function observe(replica, d)
  update_demand(replica, d)
  local key = keys[o.key + 1]
  if key == nil then return end
  if o.probe == 1 then key.probe = 0 end
  if o.rtt >= 0 then
    if o.rtt > key.rtt then key.rtt = o.rtt else key.rtt = key.rtt - idiv(key.rtt - o.rtt, 8) end
  end
  local org_typed = o.org_typed == 1
  if o.limit > 0 and not org_typed then
    learn(key)
  elseif key.lim == 0 and o.status ~= 0 and o.remaining < 0 and o.reset < 0 then
    key.lim = p.default_limit
    key.win = p.default_window
    key.lsrc = 1
  end
  if o.status == 429 then key.n429 = key.n429 + 1 end
  sync_org()
  local target = key
  if org ~= nil and org_typed then
    if o.limit > 0 then
      org.lsrc = 2
      org.lim = o.limit
      if o.window > 0 then org.win = o.window end
    end
    target = org
  end
  reconcile(target)
  if o.status == 429 then
    local wait
    if o.reset > 0 then wait = o.reset elseif o.retry_after > 0 then wait = o.retry_after else wait = p.default_pause end
    target.pause = max(target.pause, now + wait)
    target.cap = min(target.cap, target.seq)
    target['end'] = target.pause
    if o.reset > 0 then target.conf = 1 else target.conf = 0 end
  end
  if o.borrowed == 1 then
    roll(key)
    key.nh = key.nh + 1
  end
end

local function demand_args(at)
  return {tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])}
end

if ARGV[1] == 'acquire' then
  local kind, till, why, grants = acquire(tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2]),
    tonumber(ARGV[A + 3]), ARGV[A + 4], demand_args(A + 5))
  save_all()
  return reply(kind, till, why, grants)
end

-- observe, then (when n > 0) acquire for the same replica in the same round trip
for i, name in ipairs(onames) do o[name] = tonumber(ARGV[A + i]) end
local replica, d = ARGV[A + 13], demand_args(A + 14)
observe(replica, d)
local n = tonumber(ARGV[A + 18])
if n > 0 then
  local kind, till, why, grants = acquire(tonumber(ARGV[A + 17]), n, tonumber(ARGV[A + 19]),
    replica, d)
  save_all()
  return reply(kind, till, why, grants)
end
save_all()
return reply(2, 0, 0, {})
