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
-- Returns one character per lease: '1' extended, '0' lost.
--
-- Why a script: the token check and the new deadline must be one step, or a lease that ran out
-- and was taken by another worker in between would be extended for the wrong holder.

local deadline = string.format('%.6f', clock() + tonumber(ARGV[2]))

local names = {}
for j = 3, #ARGV, 3 do
  names[#names + 1] = ARGV[j + 1] .. ':s'
end
local states = hmget_all(KEYS[1], names)
local flags = {}
for k = 1, #names do
  local j = 3 * k -- this lease's queue number; its tag and token follow
  local held = states[k] and string.match(states[k], '^%d:%d+:(.+)$')
  if held and held == ARGV[j + 2] then
    redis.call('ZADD', KEYS[3 * tonumber(ARGV[j])], deadline, ARGV[j + 1])
    flags[k] = '1'
  else
    flags[k] = '0'
  end
end
return table.concat(flags)
