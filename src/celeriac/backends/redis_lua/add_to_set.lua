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
-- Returns the number of members after the addition. An expiry that is not a time (nor a
-- string) keeps the members: a chord must not forget a finished member; it is rewritten here.
-- A set:<key> that is not a set holds no members: it is replaced.
--
-- Why a script: a chord counts its finished members with this; adding and counting must be
-- one step, so that exactly one caller sees the full count. Everything is checked and read
-- before the first write, so that an error leaves every key as it was.

local now = clock()
local ttl = nil
if ARGV[3] ~= '' then
  ttl = finite(ARGV[3])
end
if not ARGV[2] or not ARGV[3] or (ARGV[3] ~= '' and (not ttl or ttl < 0)) then
  refuse('add_to_set takes a member and a time to keep the set in seconds (or empty)')
end

local expiry = redis.pcall('GET', KEYS[2])
-- Missing (or half left over, or expired): start afresh.
local live = expiry ~= false and not (finite(expiry) and finite(expiry) <= now)
local size = 0
if live then
  size = redis.pcall('SCARD', KEYS[1])
  if type(size) == 'table' then
    live, size = false, 0
  end
end

-- Writes only from here on: everything above only read.
if not live then
  redis.call('DEL', KEYS[1])
end
size = size + redis.call('SADD', KEYS[1], ARGV[2])
if ttl then
  local ttl_ms = math.max(1, math.ceil(ttl * 1000))
  redis.call('SET', KEYS[2], string.format('%.6f', now + ttl), 'PX', ttl_ms)
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
else
  redis.call('SET', KEYS[2], '')
  redis.call('PERSIST', KEYS[1])
end
return size
