-- include: lib
-- store.lua: store task records, unless the task already has a final state; hand each final
-- record to the clients waiting for it.
--
-- Three keys per record, from KEYS[3 * (i - 1) + 1]:
--          result:<id>   string  "<expires at>\n<state>\n<header JSON>\n<payload>", where
--                                <expires at> is empty for a record that never expires
--          waiting:<id>  set     one member per client waiting for the task (deleted here)
--          reply:<id>    list    one copy of the final record per waiting client, which
--                                blocks on it with BLPOP (expires a minute after the push)
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
-- ARGV[2]  seconds until the records expire ('' = never); also their Redis TTL
-- then two values per record: the state, and the rest of the record ("<header>\n<payload>")
--
-- Returns one character per record: '1' stored, '0' refused because the task's record is in a
-- final state (SUCCESS, FAILURE, REVOKED) that has not expired. Within one call, records are
-- taken in order, so the first final state in the batch wins.
--
-- Why a script: reading the old state and writing the new one must be one step, or two workers
-- finishing the same task (one of them after losing its lease) could both think they won; and
-- a client that says it waits either sees the record or is handed it.

local FINAL = {SUCCESS = true, FAILURE = true, REVOKED = true} -- celeriac.states.READY_STATES

local now = clock()
local ttl = tonumber(ARGV[2])
local expires_at, ttl_ms = '', nil
if ttl then
  expires_at = string.format('%.6f', now + ttl)
  ttl_ms = math.max(1, math.ceil(ttl * 1000))
end

local flags = {}
for i = 1, #KEYS / 3 do
  local key, waiting, reply = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local state, rest = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  local refused = false
  local old = redis.call('GET', key)
  if old then
    local old_expiry, old_state = string.match(old, '^([^\n]*)\n([^\n]*)\n')
    if old_state and FINAL[old_state] then
      refused = old_expiry == '' or tonumber(old_expiry) > now
    end
  end
  if refused then
    flags[i] = '0'
  else
    local value = expires_at .. '\n' .. state .. '\n' .. rest
    if ttl_ms then
      redis.call('SET', key, value, 'PX', ttl_ms)
    else
      redis.call('SET', key, value)
    end
    if FINAL[state] then
      local waiters = redis.call('SCARD', waiting)
      if waiters > 0 then
        for _ = 1, waiters do
          redis.call('RPUSH', reply, value)
        end
        redis.call('PEXPIRE', reply, 60000)
        redis.call('DEL', waiting)
      end
    end
    flags[i] = '1'
  end
end
return table.concat(flags)
