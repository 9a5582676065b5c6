-- include: lib
-- check.lua: hand a waiting client the record of its task at once, if it is already final.
--
-- KEYS[1]  result:<id>  string  "<expires at>\n<state>\n<header JSON>\n<payload>" (read)
-- KEYS[2]  reply:<id>   list    gets a copy of the record when it is final and not expired,
--                               for the BLPOP that the client sent right behind this script
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
--
-- Returns 1 when the record was handed over, else 0.
--
-- Why a script: the client sends "I wait" (SADD waiting:<id>), this script and its BLPOP in one
-- write, so a get() costs one round trip whether the result is there already or comes later.

local value = redis.call('GET', KEYS[1])
if not value then
  return 0
end
local expiry, state = string.match(value, '^([^\n]*)\n([^\n]*)\n')
if state ~= 'SUCCESS' and state ~= 'FAILURE' and state ~= 'REVOKED' then
  return 0
end
if expiry ~= '' and tonumber(expiry) <= clock() then
  return 0
end
redis.call('RPUSH', KEYS[2], value)
redis.call('PEXPIRE', KEYS[2], 60000)
return 1
