"""Lua scripts of the Redis state backend (layout v1, see docs/state.md).

Every (feature namespace, entity) is one hash ``<prefix>:v1:w:<namespace>:<entity>``; its fields are
bucket aggregates, so all of an entity's state sits in one key that the script declares in ``KEYS``:

==========  =========================  ==========================================
aggregate   field                      value
==========  =========================  ==========================================
count       ``<bucket>``               observations (integer)
sum         ``<bucket>``               fixed-point units (integer)
mean        ``<bucket>``               ``"<units> <count>"``
min, max    ``<bucket>``               the extreme, as Python's ``repr(float)``
distinct    ``<bucket>:<value>``       ``1`` (one field per value seen in the bucket)
==========  =========================  ==========================================

The clock key ``<prefix>:v1:clock`` holds ``T``, the newest event time seen (Python ``repr(float)``).
Bucket indices arrive from Python as decimal strings and are used verbatim as field names; all arithmetic
on them is on integers below 2^53, so Lua's doubles are exact and both backends agree bit for bit.
"""

from __future__ import annotations

# KEYS[1] = clock key; KEYS[2..] = one entity hash per op.
# ARGV[1] = mode ("ug" update+get, "u" update, "g" get; "ug:R": update+get whose last R ops are only read,
# as a get at the same ts after the updates would read them); ARGV[2] = ts ("" in get mode);
# ARGV[3] = allowed lateness; then 3 per op: the spec's meta "<agg code> <n_buckets> <bucket width>
# <ttl ms>" (parsed once per call), the bucket index, and the value ("" = no observation; distinct
# values come as "=" + value, so that an empty string is a value).
# Returns one entry per op in modes ug/g: count/sum/distinct -> integer; min/max -> string or nil;
# mean -> {units, count} or nil.
UPDATE_GET = r"""
local tonumber, sub, find, format, floor, rcall = tonumber, string.sub, string.find, string.format, math.floor, redis.call
local mode, nreads = ARGV[1], 0
local colon = find(mode, ':', 1, true)
if colon then nreads = tonumber(sub(mode, colon + 1)); mode = sub(mode, 1, colon - 1) end
local firstread = #KEYS - nreads + 1
local T = tonumber(rcall('GET', KEYS[1]))
if mode ~= 'g' then
  local ts = tonumber(ARGV[2])
  if not T or ts > T then rcall('SET', KEYS[1], ARGV[2]); T = ts end
end
local W = nil
if T then W = T - tonumber(ARGV[3]) end
local NEG = -math.huge
local metas = {}
local out = {}
local j = 4
for i = 2, #KEYS do
  local key = KEYS[i]
  local md = metas[ARGV[j]]
  if not md then
    local a, nn, bb, tt = string.match(ARGV[j], '^(%a) (%d+) (%S+) (%d+)$')
    md = {a, tonumber(nn), tonumber(bb), tt}
    metas[ARGV[j]] = md
  end
  local agg, n, bw, ttl = md[1], md[2], md[3], md[4]
  local bs, v = ARGV[j + 1], ARGV[j + 2]
  j = j + 3
  local present = (agg == 'c' or v ~= '') and i < firstread
  if agg == 'd' and present then v = sub(v, 2) end
  local b = tonumber(bs)
  local flat = rcall('HGETALL', key)
  local fb, ff, fv, m = {}, {}, {}, 0
  local h = NEG
  for k = 1, #flat, 2 do
    local f = flat[k]
    local bi, val
    if agg == 'd' then
      local p = find(f, ':', 1, true)
      bi = tonumber(sub(f, 1, p - 1)); val = sub(f, p + 1)
    else
      bi = tonumber(f); val = flat[k + 1]
    end
    m = m + 1; fb[m] = bi; ff[m] = f; fv[m] = val
    if bi > h then h = bi end
  end
  local heff = h
  if W then local bW = floor(W / bw); if bW > heff then heff = bW end end
  if mode ~= 'g' and present then
    if b > heff then heff = b end
    local lo = heff - n
    local dels = {}
    for k = 1, m do if fb[k] <= lo then dels[#dels + 1] = ff[k] end end
    for s = 1, #dels, 1000 do rcall('HDEL', key, unpack(dels, s, math.min(s + 999, #dels))) end
    if b > lo then
      local field = bs
      if agg == 'd' then field = bs .. ':' .. v end
      local at = nil
      for k = 1, m do if ff[k] == field then at = k; break end end
      if agg == 'd' then
        if not at then rcall('HSET', key, field, '1'); m = m + 1; fb[m] = b; ff[m] = field; fv[m] = v end
      else
        local old, nv = at and fv[at], nil
        if agg == 'c' then nv = format('%.0f', (old and tonumber(old) or 0) + 1)
        elseif agg == 's' then nv = format('%.0f', (old and tonumber(old) or 0) + tonumber(v))
        elseif agg == 'n' then if old and tonumber(old) <= tonumber(v) then nv = old else nv = v end
        elseif agg == 'x' then if old and tonumber(old) >= tonumber(v) then nv = old else nv = v end
        else
          local u, c = 0, 0
          if old then local p = find(old, ' ', 1, true); u = tonumber(sub(old, 1, p - 1)); c = tonumber(sub(old, p + 1)) end
          nv = format('%.0f %.0f', u + tonumber(v), c + 1)
        end
        rcall('HSET', key, field, nv)
        if at then fv[at] = nv else m = m + 1; fb[m] = b; ff[m] = field; fv[m] = nv end
      end
      if b > h then rcall('PEXPIRE', key, ttl) end
    elseif #dels > 0 and #dels == m then
      rcall('DEL', key)
    end
  end
  if mode ~= 'u' then
    local top = heff
    if b > top then top = b end
    local rlo = top - n
    if agg == 'c' or agg == 's' then
      local t = 0
      for k = 1, m do if fb[k] > rlo and fb[k] <= b then t = t + tonumber(fv[k]) end end
      out[#out + 1] = t
    elseif agg == 'd' then
      local seen, t = {}, 0
      for k = 1, m do
        if fb[k] > rlo and fb[k] <= b and not seen[fv[k]] then seen[fv[k]] = true; t = t + 1 end
      end
      out[#out + 1] = t
    elseif agg == 'a' then
      local u, c = 0, 0
      for k = 1, m do
        if fb[k] > rlo and fb[k] <= b then
          local p = find(fv[k], ' ', 1, true)
          u = u + tonumber(sub(fv[k], 1, p - 1)); c = c + tonumber(sub(fv[k], p + 1))
        end
      end
      if c > 0 then out[#out + 1] = {u, c} else out[#out + 1] = false end
    else
      local best, bn = false, nil
      for k = 1, m do
        if fb[k] > rlo and fb[k] <= b then
          local x = tonumber(fv[k])
          if not bn or (agg == 'n' and x < bn) or (agg == 'x' and x > bn) then bn = x; best = fv[k] end
        end
      end
      out[#out + 1] = best
    end
  end
end
return out
"""

# KEYS[1] = clock key; KEYS[2..] = entity hashes. ARGV[1] = now; ARGV[2] = allowed lateness; then 3 per
# key: agg code, n_buckets, bucket width. Prunes against min(now, T) - lateness; returns buckets freed.
EXPIRE = r"""
local tonumber, sub, find, format, floor, rcall = tonumber, string.sub, string.find, string.format, math.floor, redis.call
local T = tonumber(rcall('GET', KEYS[1]))
if not T then return 0 end
local now = tonumber(ARGV[1])
if now < T then T = now end
local cut = T - tonumber(ARGV[2])
local freed = 0
local j = 3
for i = 2, #KEYS do
  local key = KEYS[i]
  local agg, n, bw = ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  j = j + 3
  local flat = rcall('HGETALL', key)
  local h, fb, ff = -math.huge, {}, {}
  for k = 1, #flat, 2 do
    local f = flat[k]
    local bi
    if agg == 'd' then bi = tonumber(sub(f, 1, find(f, ':', 1, true) - 1)) else bi = tonumber(f) end
    fb[#fb + 1] = bi; ff[#ff + 1] = f
    if bi > h then h = bi end
  end
  local bW = floor(cut / bw)
  if bW > h then h = bW end
  local lo = h - n
  local dels, gone, left = {}, {}, 0
  for k = 1, #fb do
    if fb[k] <= lo then
      dels[#dels + 1] = ff[k]
      if not gone[fb[k]] then gone[fb[k]] = true; freed = freed + 1 end
    else left = left + 1 end
  end
  if left == 0 and #fb > 0 then rcall('DEL', key)
  else
    for s = 1, #dels, 1000 do rcall('HDEL', key, unpack(dels, s, math.min(s + 999, #dels))) end
  end
end
return freed
"""
