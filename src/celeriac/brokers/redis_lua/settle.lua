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
-- or an earlier operation of this call settled the message already).
--
-- Why a script: checking the token and settling must be one step, or a lease that runs out in
-- between (and is taken by another worker) would be settled by its former holder.


local first = 3 + tonumber(ARGV[2])
local names = {}
for j = first, #ARGV, 8 do
  names[#names + 1] = ARGV[j + 2] .. ':s'
end
if #names == 0 then
  return ''
end
local states = hmget_all(KEYS[1], names)

local flags, settled, forget, unpend, woken = {}, {}, {}, {}, {}
for k = 1, #names do
  local j = first + 8 * (k - 1)
  local kind, q, tag, token = ARGV[j], tonumber(ARGV[j + 1]), ARGV[j + 2], ARGV[j + 3]
  local priority, attempt, held = string.match(states[k] or '', '^(%d):(%d+):?(.*)$')
  if held ~= token or token == '' or settled[tag] then
    flags[k] = '0'
  else
    flags[k] = '1'
    settled[tag] = true
    if kind == 'ack' or kind == 'dead' then
      if kind == 'dead' then
        local body = redis.call('HGET', KEYS[1], tag) or ''
        local head = cjson.encode({tag, ARGV[2 + q], ARGV[j + 4], string.format('%.6f', clock())})
        redis.call('LPUSH', KEYS[2], head .. '\n' .. body)
      end
      forget[#forget + 1] = tag
      forget[#forget + 1] = names[k]
      local gone = unpend[q] or {}
      unpend[q] = gone
      gone[#gone + 1] = tag
    else
      redis.call('ZREM', KEYS[3 * q + 1], tag)
      local target = q
      if kind == 'replace' then
        target, priority, attempt = tonumber(ARGV[j + 5]), ARGV[j + 6], '0'
        redis.call('HSET', KEYS[1], tag, ARGV[j + 7])
      end
      redis.call('HSET', KEYS[1], names[k], priority .. ':' .. attempt)
      local eta = tonumber(ARGV[j + 4])
      if eta and eta > clock() then
        redis.call('ZADD', KEYS[3 * target + 1], string.format('%.6f', eta), tag)
      else
        redis.call('ZADD', KEYS[3 * target], rank(priority, tag), tag)
      end
      woken[target] = true
    end
  end
end

for q, gone in pairs(unpend) do
  chunked('ZREM', KEYS[3 * q + 1], gone)
end
chunked('HDEL', KEYS[1], forget)
for q in pairs(woken) do
  wake(KEYS[3 * q + 2])
end
return table.concat(flags)
