-- include: lib
-- settle.lua: acknowledge, requeue or dead-letter delivered messages, each only if the token
-- presented is still the one of its current lease.
--
-- KEYS[1]  messages     hash    "<tag>:s" -> "<priority>:<attempt>[:<token>]": the token is
--                               checked; then both fields of the message are deleted (ack,
--                               dead-letter), or the token is removed (requeue), or a retry's
--                               message replaces the bytes and the state ("<priority>:0")
-- KEYS[2]  dead         list    dead letters, newest first: a JSON line [tag, queue, reason,
--                               dead_at], a newline, then the message bytes
-- then three keys for the i-th queue named in ARGV (i = 1..n), from KEYS[3 + 3 * (i - 1)]:
--          ready:<q>    zset    tag by rank: a message requeued for now returns here
--          pending:<q>  zset    tag by lease deadline or ETA: a settled message leaves it;
--                               one requeued for later returns to it, by its ETA
--          wake:<q>     list    given one element when a message is requeued
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
-- ARGV[2]  n, the number of queues; ARGV[3 .. 2 + n] their names, in KEYS order
-- then eight values per operation:
--          kind: 'ack', 'requeue' (keep the message), 'replace' (a retry's new message), 'dead'
--          number of the queue the delivery was leased from, tag, token
--          requeue and replace: the ETA ('' = ready now); dead: the reason
--          replace: the new message's queue number, priority and body ('' otherwise)
--
-- Returns one character per operation: '1' done, '0' refused (the lease was no longer held,
-- or an earlier operation of this call settled the message already), 'x' refused because its
-- ETA is not a finite number or its new priority is not 0..9 (values a task's retry options
-- can carry: refusing the whole call would fail the worker's batch on every retry; the message
-- stays leased and comes back when its lease runs out). A message whose state does not parse
-- holds no lease that a token could match: its settlement is refused, and the message comes
-- back to a fetch when its deadline passes (fetch.lua says what then). Refuses the whole call,
-- writing nothing, when an operation's kind, queue numbers or tag are not as above.
--
-- Why a script: checking the token and settling must be one step, or a lease that runs out in
-- between (and is taken by another worker) would be settled by its former holder. Everything
-- is checked and read before the first write, so that an error leaves every key as it was.

local n = whole(ARGV[2], 0, #KEYS)
local first = 3 + (n or 0)
if not (n and #KEYS == 2 + 3 * n and (#ARGV - first + 1) % 8 == 0) then
  refuse('settle takes n, three keys and a name a queue, and eight values an operation')
end
local KINDS = {ack = 1, dead = 1, requeue = 2, replace = 2}
local names, checked, invalid = {}, {}, {}
local function check(key, kind)
  if not checked[key] then
    checked[key] = true
    expect(key, kind)
  end
end
for j = first, #ARGV, 8 do
  local kind, q, value = KINDS[ARGV[j]], whole(ARGV[j + 1], 1, n), ARGV[j + 4]
  local target = q
  if ARGV[j] == 'replace' then
    target = whole(ARGV[j + 5], 1, n)
  end
  if not (kind and target and ARGV[j + 2] ~= '') then
    refuse(string.format('operation %d: a kind, queue numbers 1..%d and a tag',
      (j - first) / 8 + 1, n))
  end
  names[#names + 1] = ARGV[j + 2] .. ':s'
  invalid[#names] = kind == 2 and not (value == '' or finite(value))
    or ARGV[j] == 'replace' and not whole(ARGV[j + 6], 0, 9)
  check(KEYS[3 * q + 1], 'zset')
  if kind == 2 then
    check(KEYS[3 * target], 'zset')
    check(KEYS[3 * target + 1], 'zset')
  elseif ARGV[j] == 'dead' then
    check(KEYS[2], 'list')
  end
end
if #names == 0 then
  return ''
end
local states = hmget_all(KEYS[1], names)

-- What to write: per queue number, tags leaving pending:<q>, and {score, tag, ...} joining
-- ready:<q> and pending:<q>; the dead letters; fields to delete and to set.
local flags, settled, unpend, ready, pending, woken = {}, {}, {}, {}, {}, {}
local letters, buried, forget, fields = {}, {}, {}, {}
local function add(into, q, a, b)
  local list = into[q] or {}
  into[q] = list
  list[#list + 1] = a
  list[#list + 1] = b
end
for k = 1, #names do
  local j = first + 8 * (k - 1)
  local kind, q, tag, token = ARGV[j], tonumber(ARGV[j + 1]), ARGV[j + 2], ARGV[j + 3]
  local priority, attempt, held = parse_state(states[k])
  if held ~= token or token == '' or settled[tag] then
    flags[k] = '0'
  elseif invalid[k] then
    flags[k] = 'x'
  else
    flags[k] = '1'
    settled[tag] = true
    add(unpend, q, tag)
    if kind == 'ack' or kind == 'dead' then
      if kind == 'dead' then
        letters[#letters + 1] = cjson.encode({tag, ARGV[2 + q], ARGV[j + 4],
          string.format('%.6f', clock())})
        buried[#buried + 1] = tag
      end
      forget[#forget + 1] = tag
      forget[#forget + 1] = names[k]
    else
      if kind == 'replace' then
        q, priority, attempt = tonumber(ARGV[j + 5]), tonumber(ARGV[j + 6]), 0
        fields[#fields + 1] = tag
        fields[#fields + 1] = ARGV[j + 7]
      end
      fields[#fields + 1] = names[k]
      fields[#fields + 1] = string.format('%d:%d', priority, attempt)
      local eta = finite(ARGV[j + 4])
      if eta and eta > clock() then
        add(pending, q, string.format('%.6f', eta), tag)
      else
        add(ready, q, rank(priority, tag), tag)
      end
      woken[q] = woken[q] or redis.call('LLEN', KEYS[3 * q + 2])
    end
  end
end
local bodies = hmget_all(KEYS[1], buried)
for i = 1, #letters do
  letters[i] = letters[i] .. '\n' .. (bodies[i] or '')
end

-- Writes only from here on: everything above only read.
for q, tags in pairs(unpend) do
  chunked('ZREM', KEYS[3 * q + 1], tags)
end
chunked('LPUSH', KEYS[2], letters)
chunked('HDEL', KEYS[1], forget)
chunked('HSET', KEYS[1], fields)
for q, items in pairs(ready) do
  chunked('ZADD', KEYS[3 * q], items)
end
for q, items in pairs(pending) do
  chunked('ZADD', KEYS[3 * q + 1], items)
end
for q, length in pairs(woken) do
  wake(KEYS[3 * q + 2], length)
end
return table.concat(flags)
