-- include: lib
-- add_to_set.lua: add a member to a workflow set and return its size; the set expires a
-- while after its latest change.
--
-- KEYS[1]  set:<key>    set     the members
-- KEYS[2]  setx:<key>   string  when the set expires (empty: never); missing: no set
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
-- ARGV[2]  the member
-- ARGV[3]  seconds until the set expires, from now ('' = never); also the Redis TTL of both keys
--
-- Returns the number of members after the addition.
--
-- Why a script: a chord counts its finished members with this; adding and counting must be
-- one step, so that exactly one caller sees the full count.

local now = clock()

local expiry = redis.call('GET', KEYS[2])
if not expiry or (expiry ~= '' and tonumber(expiry) <= now) then
  redis.call('DEL', KEYS[1]) -- expired (or half left over): start afresh
end
redis.call('SADD', KEYS[1], ARGV[2])
local ttl = tonumber(ARGV[3])
if ttl then
  local ttl_ms = math.max(1, math.ceil(ttl * 1000))
  redis.call('SET', KEYS[2], string.format('%.6f', now + ttl), 'PX', ttl_ms)
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
else
  redis.call('SET', KEYS[2], '')
  redis.call('PERSIST', KEYS[1])
end
return redis.call('SCARD', KEYS[1])
