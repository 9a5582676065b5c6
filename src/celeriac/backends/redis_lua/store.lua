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
-- taken in order, so the first final state in the batch wins. A stored value that is not a
-- record (no state line, an expiry that is not a number, a key of another type) holds no final
-- state: the new record replaces it; so does a reply:<id> that is not a list. Refuses the whole
-- call, writing nothing, when its arguments are not as above (a state must be one line).
--
-- Why a script: reading the old state and writing the new one must be one step, or two workers
-- finishing the same task (one of them after losing its lease) could both think they won; and
-- a client that says it waits either sees the record or is handed it. Everything is checked
-- and read before the first write, so that an error leaves every key as it was.

-- celeriac.states.READY_STATES
local FINAL = {SUCCESS = true, FAILURE = true, REVOKED = true}

local now = clock()
local ttl = ARGV[2] ~= '' and finite(ARGV[2])
local n = #KEYS / 3
if not (ttl ~= nil and (ARGV[2] == '' or ttl >= 0) and n % 1 == 0 and #ARGV == 2 + 2 * n) then
  refuse('store takes a time to keep the records, three keys and two values a record')
end
for i = 1, n do
  if not string.find(ARGV[1 + 2 * i], '^[^\n]+$') then
    refuse(string.format('record %d: a state is one line', i))
  end
end
local expires_at, ttl_ms = '', nil
if ttl then
  expires_at = string.format('%.6f', now + ttl)
  ttl_ms = math.max(1, math.ceil(ttl * 1000))
end

-- A value read: false when the key is missing or holds another type.
local function read(command, key)
  local value = redis.pcall(command, key)
  return type(value) ~= 'table' and value
end

-- `current` and `waiters`: what this call leaves under a key, as it goes.
local flags, stored, pushes, current, waiters = {}, {}, {}, {}, {}
for i = 1, n do
  local key, waiting, reply = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local state, rest = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  local old = current[key]
  if old == nil then
    old = read('GET', key)
  end
  local old_expiry, old_state = string.match(old or '', '^([^\n]*)\n([^\n]*)\n')
  local at = finite(old_expiry)
  if FINAL[old_state] and (old_expiry == '' or at and at > now) then
    flags[i] = '0'
  else
    local value = expires_at .. '\n' .. state .. '\n' .. rest
    current[key] = value
    stored[#stored + 1] = {key, value}
    if FINAL[state] then
      if waiters[waiting] == nil then
        waiters[waiting] = read('SCARD', waiting) or 0
      end
      if waiters[waiting] > 0 then
        pushes[#pushes + 1] = {reply, value, waiters[waiting], waiting}
        waiters[waiting] = 0
      end
    end
    flags[i] = '1'
  end
end

-- Writes only from here on: everything above only read.
for _, record in ipairs(stored) do
  if ttl_ms then
    redis.call('SET', record[1], record[2], 'PX', ttl_ms)
  else
    redis.call('SET', record[1], record[2])
  end
end
for _, push in ipairs(pushes) do
  local reply, value = push[1], push[2]
  -- A reply:<id> that is not a list holds nothing to keep (a failed RPUSH writes nothing).
  if type(redis.pcall('RPUSH', reply, value)) == 'table' then
    redis.call('DEL', reply)
    redis.call('RPUSH', reply, value)
  end
  for _ = 2, push[3] do
    redis.call('RPUSH', reply, value)
  end
  redis.call('PEXPIRE', reply, 60000)
  redis.call('DEL', push[4])
end
return table.concat(flags)
