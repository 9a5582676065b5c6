-- include: lib
-- check.lua: hand a waiting client the record of its task at once, if it is already final.
--
-- KEYS[1]  result:<id>  string  "<expires at>\n<state>\n<header JSON>\n<payload>" (read)
-- KEYS[2]  reply:<id>   list    gets a copy of the record when it is final and not expired,
--                               for the BLPOP that the client sent right behind this script
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
--
-- Returns 1 when the record was handed over, else 0. A value that is not a record (no state
-- line, an expiry that is not a number, a key of another type) is not handed over: the client
-- waits for the store that replaces it. A reply:<id> that is not a list is replaced.
--
-- Why a script: the client sends "I wait" (SADD waiting:<id>), this script and its BLPOP in one
-- write, so a get() costs one round trip whether the result is there already or comes later.
-- It reads before its one write, so that an error leaves every key as it was.

local value = redis.pcall('GET', KEYS[1])
if type(value) ~= 'string' then
  return 0
end
local expiry, state = string.match(value, '^([^\n]*)\n([^\n]*)\n')
if state ~= 'SUCCESS' and state ~= 'FAILURE' and state ~= 'REVOKED' then
  return 0
end
local at = finite(expiry)
if expiry ~= '' and not (at and at > clock()) then
  return 0
end

-- Writes only from here on: everything above only read.
-- A reply:<id> that is not a list holds nothing to keep (a failed RPUSH writes nothing).
if type(redis.pcall('RPUSH', KEYS[2], value)) == 'table' then
  redis.call('DEL', KEYS[2])
  redis.call('RPUSH', KEYS[2], value)
end
redis.call('PEXPIRE', KEYS[2], 60000)
return 1
