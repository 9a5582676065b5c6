-- include: lib
-- history_record.lua: one step of the history's indexing (celeriac/backends/history_log.py):
-- merge the events of a run of event-log batches into their tasks' history entries and the
-- per-second counts, move the index position past the run, and prune what is past its
-- retention. Only if the index position is still ARGV[6]: another reader may have indexed the
-- run already (it returns -1 then, having written nothing).
--
-- Keys (all under ARGV[3], the history prefix "<global_keyprefix>celeriac:hist:"; built here,
-- as they depend on the entries' fields, which only this script reads):
--   log                stream  the event log: one entry a frame of event rows (fields h: the
--                              host, r: the frame, t: its writer's retention); workers append,
--                              this script trims what it indexed, ARGV[4] on
--   indexed            string  the index position: the id of the last log entry indexed
--   task:<id>          hash    one entry: `events`, its timeline (its events as JSON lines, in
--                              arrival order: the reader folds the entry's other fields from
--                              them), and what this script indexes and merges by: `state`,
--                              `state_time`, `seen`, `name`, `worker`
--   all                zset    every entry id, scored by `seen` (its first event's time); also
--                              what retention prunes by (seen older than now - retention)
--   by-state:<state>   zset    the ids in that state, by `seen` (likewise by-name:, by-worker:)
--   text               hash    id -> "<args>\0<kwargs>\0<result>", for text searches
--   counts             hash    "<state>\n<name>" -> how many entries
--   stats              hash    "<second>" -> "succeeded failed retried runtime_sum
--                              runtime_count runtime_max" (celeriac.history.SecondStats)
--   seconds            zset    the seconds in stats, by themselves (for ranges and pruning)
--
-- What costs Redis is the number of calls and fields, not the data: an entry is one HMGET and
-- one HSET of at most six fields;
-- the index, text and count changes of the whole batch are gathered and sent as one ZADD a
-- zset, one HSET of `text`, one HINCRBY a (state, name) (see `bulk`).
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
-- ARGV[2]  retention in seconds ('' = forever)
-- ARGV[3]  the history prefix; ARGV[4] the log entries before this id go ('' = none);
-- ARGV[5]  entries pruned per call at most
-- ARGV[6]  the index position the step began from ('' = none yet); ARGV[7] the new one
-- ARGV[8]  how many tasks, then per task (its events folded: celeriac.history.fold): task id,
--          state, the time of that state, '1' when it may replace a stored state ('0': only
--          task-sent), seen (its first event's time), its name and worker ('' = not said),
--          '' when args, kwargs and result did not change, else what the batch says of them
--          ("<args>\0<kwargs>\0<result>": right as it is for a new entry), its events as
--          JSON lines
-- then     how many seconds, then per second: the second and its six counts
--
-- Returns the number of entries pruned, or -1 when the position had moved. The merge rule is
-- celeriac.history.apply's: the later event's state wins, a task-sent's never replaces one,
-- the earliest `seen` stays. Why a script: an entry's state, its indexes, the counts and the
-- index position move together, whichever reader indexes.

local P = ARGV[3]
if (redis.call('GET', P .. 'indexed') or '') ~= ARGV[6] then
  return -1
end
local now = clock()
local retention = ARGV[2] ~= '' and finite(ARGV[2]) or nil
local log_start, prune_limit = ARGV[4], tonumber(ARGV[5])

-- Gathered changes: zset key -> {score, id, ...}; counts field -> delta; text hash pairs.
local adds, deltas, texts = {}, {}, {}

-- One call for many arguments, in slices (Lua's unpack has a limit).
local function bulk(command, key, values)
  for first = 1, #values, 1000 do
    redis.call(command, key, unpack(values, first, math.min(#values, first + 999)))
  end
end

local function indexes(state, name, worker)
  return {P .. 'all', P .. 'by-state:' .. state, P .. 'by-name:' .. name, P .. 'by-worker:' .. worker}
end

local function count(state, name, by)
  local field = state .. '\n' .. name
  deltas[field] = (deltas[field] or 0) + by
end

local function add(key, score, id)
  local list = adds[key]
  if not list then
    list = {}
    adds[key] = list
  end
  list[#list + 1], list[#list + 2] = score, id
end

-- Pruning: entries past their retention (by `seen`), and the counts of seconds past it.
local doomed = {}
if retention then
  doomed = redis.call('ZRANGEBYSCORE', P .. 'all', '-inf', now - retention, 'LIMIT', 0, prune_limit)
end
for _, id in ipairs(doomed) do
  local f = redis.call('HMGET', P .. 'task:' .. id, 'state', 'name', 'worker')
  if f[1] then
    for _, key in ipairs(indexes(f[1], f[2] or '', f[3] or '')) do
      redis.call('ZREM', key, id)
    end
    count(f[1], f[2] or '', -1)
  end
  redis.call('DEL', P .. 'task:' .. id)
  redis.call('HDEL', P .. 'text', id)
end
if retention then
  local old = redis.call('ZRANGEBYSCORE', P .. 'seconds', '-inf', now - retention)
  if #old > 0 then
    bulk('HDEL', P .. 'stats', old)
  end
  redis.call('ZREMRANGEBYSCORE', P .. 'seconds', '-inf', now - retention)
end

local i = 9
for _ = 1, tonumber(ARGV[8]) do
  local id, state, st_text, takes, seen_text = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local name, worker, text, timeline = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  i = i + 9
  local key = P .. 'task:' .. id
  local cur = redis.call('HMGET', key, 'state', 'state_time', 'seen', 'name', 'worker', 'events')
  local old_state, old_name, old_worker = cur[1], cur[4] or '', cur[5] or ''
  local fields = {}
  if name ~= '' and name ~= old_name then
    fields[#fields + 1], fields[#fields + 2] = 'name', name
  end
  if worker ~= '' and worker ~= old_worker then
    fields[#fields + 1], fields[#fields + 2] = 'worker', worker
  end
  local new_state = old_state
  if not old_state or (takes == '1' and tonumber(st_text) >= (tonumber(cur[2]) or 0)) then
    new_state = state
    fields[#fields + 1], fields[#fields + 2] = 'state', state
    fields[#fields + 1], fields[#fields + 2] = 'state_time', st_text
  end
  local seen, old_seen = tonumber(seen_text), tonumber(cur[3])
  local reseen = not old_seen or seen < old_seen
  if reseen then
    fields[#fields + 1], fields[#fields + 2] = 'seen', seen_text
  else
    seen = old_seen
  end
  fields[#fields + 1], fields[#fields + 2] = 'events', cur[6] and (cur[6] .. '\n' .. timeline) or timeline
  if text ~= '' and old_state then  -- an update: the text is the merged entry's
    local t = {string.match(redis.call('HGET', P .. 'text', id) or '', '^(.-)%z(.-)%z(.*)$')}
    local a, k, r = string.match(text, '^(.-)%z(.-)%z(.*)$')
    text = (a ~= '' and a or t[1] or '') .. '\0' .. (k ~= '' and k or t[2] or '') .. '\0' .. (r ~= '' and r or t[3] or '')
  end
  redis.call('HSET', key, unpack(fields))
  local new_name = name ~= '' and name or old_name
  local new_worker = worker ~= '' and worker or old_worker
  local moved = old_state ~= new_state or old_name ~= new_name or old_worker ~= new_worker
  local new_keys = indexes(new_state, new_name, new_worker)
  if old_state and moved then
    for n_key, old_key in ipairs(indexes(old_state, old_name, old_worker)) do
      if old_key ~= new_keys[n_key] then
        redis.call('ZREM', old_key, id)
      end
    end
    count(old_state, old_name, -1)
  end
  if moved then
    count(new_state, new_name, 1)
  end
  if moved or reseen then
    for _, index in ipairs(new_keys) do
      add(index, seen, id)
    end
  end
  if text ~= '' then
    texts[#texts + 1], texts[#texts + 2] = id, text
  end
end
for index, values in pairs(adds) do
  bulk('ZADD', index, values)
end
if #texts > 0 then
  bulk('HSET', P .. 'text', texts)
end
for field, by in pairs(deltas) do
  if by ~= 0 and redis.call('HINCRBY', P .. 'counts', field, by) <= 0 then
    redis.call('HDEL', P .. 'counts', field)
  end
end
for _ = 1, tonumber(ARGV[i]) do
  local second = ARGV[i + 1]
  local old = redis.call('HGET', P .. 'stats', second)
  local v = {0, 0, 0, 0, 0, 0}
  if old then
    local j = 1
    for word in string.gmatch(old, '%S+') do
      v[j] = tonumber(word) or 0
      j = j + 1
    end
  end
  for j = 1, 5 do
    v[j] = v[j] + tonumber(ARGV[i + 1 + j])
  end
  v[6] = math.max(v[6], tonumber(ARGV[i + 7]))
  redis.call('HSET', P .. 'stats', second, string.format('%d %d %d %.6f %d %.6f', unpack(v)))
  redis.call('ZADD', P .. 'seconds', second, second)
  i = i + 7
end
redis.call('SET', P .. 'indexed', ARGV[7])
if log_start ~= '' then
  redis.call('XTRIM', P .. 'log', 'MINID', '~', log_start)
end
return #doomed
