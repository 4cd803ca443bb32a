-- Part 4 of the limiter script (see state.lua): learning, reconciliation, the operation.

-- Observe: what Close answered to one call.
local o = {}
local onames = {'key', 'seq', 'probe', 'status', 'limit', 'remaining', 'reset', 'window',
  'retry_after', 'org_typed', 'rtt', 'borrowed', 'alone', 'oseq'}

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
  local full = eff(b.lim)
  local pace = idiv(b.win, b.fres)
  local client = b.tobs >= b.kin
  local quiet = 6 * pace
  if client then quiet = 2 * pace end
  local since = b['end'] - b.win
  if others > 0 then since = b.tog end
  if (others > 0 or client) and b.tobs - since > quiet then
    return max(max(full - min(b.fres, others), idiv(full, 8)), 1)
  end
  if others > 0 and b.tobs < b.kin then return room(b) end
  local left = min(max(b['end'] - b.tobs, 0), b.win)
  local rest = idiv(min(b.fres, 100000) * left + b.win - 1, b.win)
  local theirs = max(others - b.nstr, 0)
  local most = b.fres
  if client and (b['end'] - b.win) - b.ptobs > idiv(b.win, 8) then
    local gone = max(b.tobs - (b['end'] - b.win), idiv(b.win * 3, 4))
    most = max(most, idiv(min(theirs, 100000) * b.win + gone - 1, gone))
  end
  local kept = min(most, theirs + rest)
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
    local ours = idiv(left, 2)
    if b.kin <= b.tobs and b.hist > 0 then ours = left end
    r = min(r, b.nobs + max(min(ours, left - theirs), 0))
  end
  b.cap = b.base + r
end

-- See learn.rs: a late answer of the previous window.
local function previous(b, seq)
  if o.remaining < 0 or b.hist == 0 then return end
  local limit = b.lim
  if o.limit > 0 then limit = o.limit end
  b.pcmax = max(b.pcmax, limit - o.remaining)
  b.ptobs = b['end'] - b.win
  if seq > b.pbase and seq <= b.base and o.status ~= 429 then b.pnobs = b.pnobs + 1 end
  b.fres = reserve(b)
  recap(b)
end

-- See policy.rs: others <= cmax - nobs.
local function reconcile(b, seq)
  if b.lim == 0 then return end
  if b['end'] ~= 0 or o.reset < 0 then roll(b) end
  if o.alone == 0 then b.kin = max(b.kin, now + 2 * b.win) end
  if o.reset >= 0 then
    local e = now + o.reset
    local half = idiv(b.win, 2)
    if b['end'] == 0 or e > b['end'] + half then
      b['end'] = e
      b.conf = 1
      b.base = seq - 1
      b.cmax = 0
      b.nobs = 0
      b.omax = 0
      b.tog = 0
      b.nstr = 0
      b.short = 0
      b.cap = b.base + room(b)
    elseif e < b['end'] - half then
      if e >= b['end'] - b.win - half then previous(b, seq) end
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
  if seq > b.base and o.status ~= 429 then
    b.nobs = b.nobs + 1
  elseif seq > b.pbase and o.status ~= 429 then
    b.nstr = b.nstr + 1
  end
  if b.cmax - b.nobs > b.omax then
    b.omax = b.cmax - b.nobs
    b.tog = now
  end
  recap(b)
end

-- See learn.rs: count_in_org.
local function count_in_org()
  if org.lim == 0 or o.remaining < 0 or o.status == 429 then return end
  roll(org)
  if o.oseq > org.base then org.nobs = org.nobs + 1 end
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
  if org ~= nil and org.lim > 0 and key.lim > 0 and o.limit == org.lim and o.limit ~= key.lim then
    org_typed = true
  end
  if org_typed and key.lsrc == 2 then key.lexp = now + p.learned_ttl end
  if o.limit > 0 and not org_typed then
    learn(key)
  elseif key.lim == 0 and o.status ~= 0 and o.remaining < 0 and o.reset < 0 then
    key.lim = p.default_limit
    key.win = p.default_window
    key.lsrc = 1
  end
  if o.status == 429 then key.n429 = key.n429 + 1 end
  sync_org()
  if org ~= nil and not org_typed then count_in_org() end
  local target, seq = key, o.seq
  if org ~= nil and org_typed then
    if o.limit > 0 then
      org.lsrc = 2
      org.lim = o.limit
      if o.window > 0 then org.win = o.window end
    end
    target, seq = org, o.oseq
  end
  reconcile(target, seq)
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
  return {tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])}
end

-- See policy/join.rs: one group served in another's state, if others were counted here.
local function shows_others(b)
  local others = max(b.omax - b.nstr, b.pcmax - b.pnobs)
  return others >= max(idiv(b.lim, 8), 2)
end

if ARGV[1] == 'join' then
  if keys[1].moved > 0 then return {fmt(now), '0'} end
  local seen = false
  for _, key in ipairs(keys) do
    if shows_others(key) then seen = true end
  end
  if not seen then return {fmt(now), '0'} end
  local from = max(now, 1)
  for _, key in ipairs(keys) do from = max(from, key['end']) end
  for i, key in ipairs(keys) do
    key.moved = from
    save(KEYS[i + 2], key)
  end
  redis.call('HSET', KEYS[3], 'host', ARGV[A + 1])
  return {fmt(now), fmt(from)}
end
if ARGV[1] == 'adopt' then
  local from = tonumber(ARGV[A + 1])
  for i, key in ipairs(keys) do
    if key.adopt == 0 or from < key.adopt then key.adopt = from end
    save(KEYS[i + 2], key)
  end
  return {fmt(now)}
end
if ARGV[1] == 'leave' then
  for i, key in ipairs(keys) do
    key.moved = 0
    save(KEYS[i + 2], key)
  end
  redis.call('HDEL', KEYS[3], 'host')
  return {fmt(now)}
end

if ARGV[1] == 'acquire' then
  local kind, till, why, grants = acquire(tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2]),
    tonumber(ARGV[A + 3]), ARGV[A + 4], demand_args(A + 5))
  save_all()
  return reply(kind, till, why, grants)
end

-- observe, then (when n > 0) acquire for the same replica in the same round trip
for i, name in ipairs(onames) do o[name] = tonumber(ARGV[A + i]) end
local replica, d = ARGV[A + 15], demand_args(A + 16)
observe(replica, d)
local n = tonumber(ARGV[A + 21])
if n > 0 then
  local kind, till, why, grants = acquire(tonumber(ARGV[A + 20]), n, tonumber(ARGV[A + 22]),
    replica, d)
  save_all()
  return reply(kind, till, why, grants)
end
save_all()
return reply(2, 0, 0, {})
