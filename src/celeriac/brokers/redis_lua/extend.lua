-- include: lib
-- extend.lua: push lease deadlines forward, for the leases whose token is still current.
--
-- KEYS[1]  messages     hash    "<tag>:s" -> "<priority>:<attempt>[:<token>]" (read)
-- then three keys per queue, from KEYS[2 + 3 * (i - 1)]; only the second is touched:
--          ready:<q>
--          pending:<q>  zset    tag by lease deadline (deadlines moved)
--          wake:<q>
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
-- ARGV[2]  the new lease length in seconds, counted from now
-- then three values per lease: queue number, tag, token
--
-- Returns one character per lease: '1' extended, '0' lost (a state that does not parse holds
-- no lease). Refuses the whole call, writing nothing, when its values are not as above.
--
-- Why a script: the token check and the new deadline must be one step, or a lease that ran out
-- and was taken by another worker in between would be extended for the wrong holder.
-- Everything is checked and read before the first write, so that an error leaves every key as
-- it was.

local lease, nq = finite(ARGV[2]), (#KEYS - 1) / 3
if not lease or lease < 0 or nq % 1 ~= 0 or (#ARGV - 2) % 3 ~= 0 then
  refuse('extend takes a lease in seconds, three keys per queue and three values a lease')
end
local names, checked = {}, {}
for j = 3, #ARGV, 3 do
  local q = whole(ARGV[j], 1, nq)
  if not q or ARGV[j + 1] == '' then
    refuse(string.format('lease %d: a queue number 1..%d and a tag', j / 3, nq))
  end
  if not checked[q] then
    checked[q] = true
    expect(KEYS[3 * q], 'zset')
  end
  names[#names + 1] = ARGV[j + 1] .. ':s'
end
local states = hmget_all(KEYS[1], names)
local deadline = string.format('%.6f', clock() + lease)
local flags, extended = {}, {}
for k = 1, #names do
  -- This lease's queue number; its tag and token follow.
  local j = 3 * k
  local _, _, held = parse_state(states[k])
  if held and held ~= '' and held == ARGV[j + 2] then
    local q = tonumber(ARGV[j])
    extended[q] = extended[q] or {}
    table.insert(extended[q], deadline)
    table.insert(extended[q], ARGV[j + 1])
    flags[k] = '1'
  else
    flags[k] = '0'
  end
end

-- Writes only from here on: everything above only read.
for q, items in pairs(extended) do
  chunked('ZADD', KEYS[3 * q], items)
end
return table.concat(flags)
