-- Part 2 of the limiter script (see state.lua): the room of a window and one slot of it.

-- See policy.rs: room kept for what others took in the previous window.
local function reserve(b)
  local others = max(b.pcmax - b.pnobs, 0)
  if others == 0 then return 0 end
  local e = b['end'] - b.win
  local seen = max(min(max(b.ptobs - (e - b.win), idiv(b.win, 4)), b.win), 1)
  local after = min(max(e - b.ptobs, 0), b.win)
  local spare = max(eff(b.lim) - b.pcmax, 0)
  local unseen = idiv(min(others, 100000) * after + seen - 1, seen)
  if b.kin >= e then unseen = min(unseen, spare) end
  return others + unseen + idiv(max(spare - unseen, 0) + 1, 2)
end

local function room(b)
  local full = eff(b.lim)
  return max(max(full - b.fres, idiv(full, 8)), 1)
end

local function roll(b)
  if b.lim == 0 or now < b['end'] then return end
  local nxt = now < b['end'] + b.win
  local start = now
  if nxt then start = b['end'] end
  b['end'] = start + b.win
  local adopted = b.adopt > 0 and start >= b.adopt - idiv(b.win, 2)
  local first = adopted and start < b.adopt + idiv(b.win, 2)
  if adopted and not first then b.adopt = 0 end
  local known = nxt and b.short == 0
  local partial = known and b.hist == 0
  if known then
    b.hist, b.ph, b.pn = 1, b.nh, b.nn
  else
    b.hist, b.ph, b.pn = 0, 0, 0
  end
  if first or partial then
    local eighth = idiv(eff(b.lim), 8)
    b.ph, b.pn = max(b.ph, eighth), max(b.pn, eighth)
  end
  b.nh, b.nn = 0, 0
  if known then b.pcmax, b.pnobs = b.cmax, b.nobs + b.nstr else b.pcmax, b.pnobs = 0, 0 end
  if adopted then b.pcmax, b.pnobs = 0, 1099511627776 end
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
  b.short = 0
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

-- See learn.rs: others took two or more calls beyond the room kept for them.
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
  if b.hist == 0 and stop - at < min(2 * guard, idiv(b.win, 4)) then
    if b.seq - b.base <= 1 then b.short = 1 end
    return nil, b['end'], 3
  end
  if rem <= d_hi then return nil, min(now + 2 * max(step, 1), b['end']), 5 end
  local unsure = b.conf == 0 or b.hist == 0 or b.fres > 0 or b.cmax > b.nobs
  local ahead = horizon[max(prio, 1)] * step
  if crowded(b) then ahead = min(step, token(b)) end
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
