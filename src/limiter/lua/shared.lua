-- Part 3 of the limiter script (see state.lua): buckets, organization, demand, acquire.

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
    if org['end'] ~= 0 and org.lim > 0 then org.cap = min(org.cap, org.base + eff(org.lim)) end
  end
  if org.lim > 0 and org['end'] == 0 then
    if e > 0 then org['end'] = e else org['end'] = now + org.win end
    org.cap = eff(org.lim)
  end
end

-- Demand: field per replica, value "high,normal,low,callers,expiry,ticket" (callers: of the
-- calls waiting at normal, policy.rs CALLERS); field "~tick" holds the
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
      local h, n, l, c, exp, t = string.match(raw[i + 1], '^(%d+),(%d+),(%d+),(%d+),(%d+),(%d+)$')
      if exp ~= nil and tonumber(exp) > now then
        demand[raw[i]] = {tonumber(h), tonumber(n), tonumber(l), tonumber(c), exp = tonumber(exp),
          ticket = tonumber(t)}
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
    e = {0, 0, 0, 0, exp = 0, ticket = 0}
    demand[replica] = e
  end
  e[1], e[2], e[3], e[4] = d[1], d[2], d[3], d[4]
  e.exp = till + p.demand_ttl
end

local function save_demand()
  local e = demand[demand_me]
  if e == nil then
    redis.call('HDEL', KEYS[1], demand_me)
  else
    redis.call('HSET', KEYS[1], demand_me,
      fmt(e[1]) .. ',' .. fmt(e[2]) .. ',' .. fmt(e[3]) .. ',' .. fmt(e[4]) .. ',' .. fmt(e.exp) .. ','
      .. fmt(e.ticket))
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
  if granted == 0 and why == 6 then
    out[#out + 1] = redis.call('HGET', KEYS[3], 'host') or ''
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
  e[4] = min(e[4], e[2])
  if prio ~= HIGH and e.ticket <= now then e.ticket = 0 end
end

local function next_ask(prio, replica, till, why)
  local g = gap()
  if prio == HIGH or g <= 0 or why == 1 or why == 2 or why == 6 then return till end
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

-- At normal, while other replicas wait at it, the asker's share of the horizon by callers,
-- at least one (policy/demand.rs fair_share).
local function fair_share(prio, n, replica, d)
  if prio == HIGH or prio == LOW then return n end
  local others = 0
  for name, counts in pairs(demand) do
    if name ~= replica and counts[prio + 1] > 0 then others = others + max(counts[4], 1) end
  end
  if others <= 0 then return n end
  local mine = min(max(d[4], 1), 100000)
  local share = idiv(horizon[prio] * mine, mine + min(others, 100000000))
  return min(n, max(share, 1))
end

-- Books up to n slots (its fair share while other replicas wait) on the key with the
-- earliest room, within the organization cap.
local function acquire(prio, n, max_wait, replica, d)
  update_demand(replica, d)
  local d_hi = higher_demand(replica, prio)
  n = fair_share(prio, n, replica, d)
  sync_org()
  local grants = {}
  local wait_till, wait_why = nil, 3
  local moved = keys[1].moved
  if moved > 0 and now >= moved then wait_till, wait_why = moved, 6 end
  while wait_why ~= 6 and #grants < n do
    -- See policy/pool.rs: one probe for the whole group until one key knows the limit.
    local probing = 0
    for _, key in ipairs(keys) do
      if key.lim > 0 then probing = -1 break end
      probing = max(probing, key.probe)
    end
    if org ~= nil and org.lim > 0 then probing = -1 end
    local best, best_i = nil, nil
    for i, key in ipairs(keys) do
      local slot, till, why = nil, nil, nil
      if probing > now then
        till, why = probing, 2
      else
        slot, till, why = candidate(key, prio, max_wait, d_hi)
      end
      if slot ~= nil then
        if best == nil or slot.at < best.at or (slot.at == best.at and slot.probe and not best.probe) then
          best, best_i = slot, i
        end
      elseif wait_till == nil or till < wait_till then
        wait_till, wait_why = till, why
      end
    end
    if best == nil then break end
    if moved > 0 and best.at >= moved then
      wait_till, wait_why = moved, 6
      break
    end
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
    local oseq = 0
    if org ~= nil then oseq = org.seq end
    grants[#grants + 1] = {best_i - 1, best.at, key.seq, oseq, probe}
  end
  if #grants == 0 then return 0, next_ask(prio, replica, wait_till or now, wait_why), wait_why, grants end
  leave_line(prio, replica, #grants)
  if #grants < n and wait_till ~= nil then
    return 1, next_ask(prio, replica, wait_till, wait_why), wait_why, grants
  end
  return 1, 0, 0, grants
end
