-- history_query.lua: one page of a history search, newest first, and how many matched.
--
-- Keys (under ARGV[1], the history prefix; see history_record.lua): the zsets named in
-- ARGV[7...] (all, by-state:<s>, by-name:<n>, by-worker:<w>: an entry must be in each),
-- text (read whole for a text search) and task:<id> (read: the page's entries).
--
-- ARGV[1]  the history prefix
-- ARGV[2]  lowest `seen` ('-inf' for none); ARGV[3] highest ('+inf')
-- ARGV[4]  text to find in args, kwargs or result ('' = none; plain, case-sensitive)
-- ARGV[5]  offset; ARGV[6] limit
-- ARGV[7...] the zsets
--
-- Returns {total, id1, fields1, id2, fields2, ...}: fields as HGETALL gives them. With one
-- zset and no text, the page is read by rank (ZCOUNT, ZREVRANGEBYSCORE LIMIT); with text, the
-- text hash is searched and its hits checked against the zsets and sorted; otherwise the
-- smallest zset is walked, newest first, and each id checked against the rest. Read only.

local P, low, high, text = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local sets, primary, size = {}, nil, nil
for j = 7, #ARGV do
  sets[#sets + 1] = ARGV[j]
  local c = redis.call('ZCARD', ARGV[j])
  if not size or c < size then
    primary, size = ARGV[j], c
  end
end

-- A bound as a number ('-inf' and '+inf' spelled out: not every Lua reads them).
local function bound(text, default)
  if text == '-inf' or text == '+inf' then
    return default
  end
  return tonumber(text)
end

local ids, total = {}, 0
if #sets == 1 and text == '' then
  total = redis.call('ZCOUNT', primary, low, high)
  ids = redis.call('ZREVRANGEBYSCORE', primary, high, low, 'LIMIT', offset, limit)
elseif text ~= '' then
  -- The text of every entry is in one hash: one read, then the hits are sorted by `seen`.
  local lo, hi, hits = bound(low, -math.huge), bound(high, math.huge), {}
  local flat = redis.call('HGETALL', P .. 'text')
  for k = 1, #flat, 2 do
    if string.find(flat[k + 1], text, 1, true) then
      local id, ok = flat[k], true
      local seen = tonumber(redis.call('ZSCORE', sets[1], id))
      ok = seen ~= nil and seen >= lo and seen <= hi
      for j = 2, #sets do
        if ok and not redis.call('ZSCORE', sets[j], id) then
          ok = false
        end
      end
      if ok then
        hits[#hits + 1] = {seen, id}
      end
    end
  end
  table.sort(hits, function(a, b)
    if a[1] ~= b[1] then
      return a[1] > b[1]
    end
    return a[2] > b[2]
  end)
  total = #hits
  for k = offset + 1, math.min(#hits, offset + limit) do
    ids[#ids + 1] = hits[k][2]
  end
elseif size > 0 then
  for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', primary, high, low)) do
    local ok = true
    for _, key in ipairs(sets) do
      if key ~= primary and not redis.call('ZSCORE', key, id) then
        ok = false
        break
      end
    end
    if ok then
      total = total + 1
      if total > offset and #ids < limit then
        ids[#ids + 1] = id
      end
    end
  end
end

local out = {total}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', P .. 'task:' .. id)
end
return out
