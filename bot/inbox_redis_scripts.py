"""The Lua scripts behind ``bot.inbox_redis``: each inbox write is one atomic script.

Keys under the prefix ``P`` (docs/scaling.md has the full layout):
``P:e:<id>`` event hash, ``P:r:<id>`` reply hash, ``P:er:<event id>`` the event's reply ids,
``P:dedup`` dedup key -> event id, ``P:pending:<shard>`` / ``P:unsettled:<shard>`` sorted by
id, ``P:done`` done events by done time, ``P:dead:events`` / ``P:dead:replies``,
``P:replayed:{events,replies}:<shard>``, ``P:feed:<shard>`` (a stream of new event ids),
``P:win`` window times, ``P:state:<page>:<psid>`` a conversation's state (JSON),
``P:lease:<shard>`` the shard's owner.

A write that carries a lease token (``ARGV`` "token") is fenced: it fails with ``NOTOWNER``
unless the token still owns the shard, so a replica that stalled past its lease cannot
commit or send for a shard another replica has taken over.
"""

from __future__ import annotations

# Checks the lease of shard ``s`` against ``token`` ("" = not fenced).
_FENCE = """
local function fence(p, token, s)
  if token ~= '' and redis.call('GET', p .. ':lease:' .. s) ~= token then
    return redis.error_reply('NOTOWNER shard ' .. s .. ' is not owned by this replica')
  end
end
"""

# ARGV: prefix, feed max length, then 9 per record:
# dedup, shard, page, sender, kind, ts, payload, traceparent, received_at. Returns ids (0: dup).
ENQUEUE = """
local p, maxlen = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 9 do
  local dedup = ARGV[i]
  if redis.call('HEXISTS', p .. ':dedup', dedup) == 1 then
    out[#out + 1] = 0
  else
    local id = redis.call('INCR', p .. ':seq:events')
    local shard = ARGV[i + 1]
    redis.call('HSET', p .. ':dedup', dedup, id)
    redis.call('HSET', p .. ':e:' .. id, 'shard', shard, 'page', ARGV[i + 2],
      'sender', ARGV[i + 3], 'kind', ARGV[i + 4], 'ts', ARGV[i + 5], 'dedup', dedup,
      'payload', ARGV[i + 6], 'tp', ARGV[i + 7], 'rcv', ARGV[i + 8], 'state', 'p',
      'attempts', 0)
    redis.call('ZADD', p .. ':pending:' .. shard, id, id)
    redis.call('XADD', p .. ':feed:' .. shard, 'MAXLEN', '~', maxlen, '*', 'id', id)
    out[#out + 1] = id
  end
end
return out
"""

# ARGV: prefix, token, event id, now, state op ("" none, "set", "del"), state key, state JSON,
# then 6 per reply: n, page, psid, body, shard, state (pending, or sending when the sender
# claims the reply at once). Returns "new" and the new replies' ids, or "again" and the ids
# stored by the first commit of this event (a retry whose first answer was lost).
COMMIT_HANDLED = (
    _FENCE
    + """
local p, token, id, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local shard = redis.call('HGET', p .. ':e:' .. id, 'shard')
if not shard then return redis.error_reply('NOEVENT no event ' .. id) end
local refused = fence(p, token, shard)
if refused then return refused end
if redis.call('HGET', p .. ':e:' .. id, 'state') == 'd' then
  local ids = redis.call('LRANGE', p .. ':er:' .. id, 0, -1)  -- a retry: already committed
  table.insert(ids, 1, 'again')
  return ids
end
redis.call('HSET', p .. ':e:' .. id, 'state', 'd', 'done_at', now)
redis.call('ZREM', p .. ':pending:' .. shard, id)
redis.call('ZREM', p .. ':replayed:events:' .. shard, id)
redis.call('ZADD', p .. ':done', now, id)
if ARGV[5] == 'set' then
  redis.call('SET', ARGV[6], ARGV[7])
elseif ARGV[5] == 'del' then
  redis.call('DEL', ARGV[6])
end
local out = {'new'}
for i = 8, #ARGV, 6 do
  local rid = redis.call('INCR', p .. ':seq:replies')
  local rshard = ARGV[i + 4]
  redis.call('HSET', p .. ':r:' .. rid, 'event', id, 'n', ARGV[i], 'page', ARGV[i + 1],
    'psid', ARGV[i + 2], 'body', ARGV[i + 3], 'shard', rshard, 'state', ARGV[i + 5],
    'created', now, 'attempts', 0)
  redis.call('RPUSH', p .. ':er:' .. id, rid)
  redis.call('ZADD', p .. ':unsettled:' .. rshard, rid, rid)
  out[#out + 1] = rid
end
return out
"""
)

# ARGV: prefix, token, event id, attempts (or the time when dead-lettering), error, dead ("1"
# moves the event to the "handler failed" dead letters).
RECORD_FAILURE = (
    _FENCE
    + """
local p, token, id = ARGV[1], ARGV[2], ARGV[3]
local key = p .. ':e:' .. id
local shard = redis.call('HGET', key, 'shard')
if not shard then return 0 end
local refused = fence(p, token, shard)
if refused then return refused end
redis.call('HSET', key, 'last_error', ARGV[5])
if ARGV[6] == '1' then
  redis.call('HSET', key, 'state', 'x', 'done_at', ARGV[4])
  redis.call('ZREM', p .. ':pending:' .. shard, id)
  redis.call('ZREM', p .. ':replayed:events:' .. shard, id)
  redis.call('ZADD', p .. ':dead:events', id, id)
else
  redis.call('HSET', key, 'attempts', ARGV[4])
end
return 1
"""
)

# ARGV: prefix, token, then 4 per update: reply id, state, attempts, error ("=" + text, or "").
UPDATE_REPLIES = (
    _FENCE
    + """
local p, token = ARGV[1], ARGV[2]
for i = 3, #ARGV, 4 do
  local rid, state = ARGV[i], ARGV[i + 1]
  local key = p .. ':r:' .. rid
  local shard = redis.call('HGET', key, 'shard')
  if shard then
    local refused = fence(p, token, shard)
    if refused then return refused end
    redis.call('HSET', key, 'state', state, 'attempts', ARGV[i + 2])
    if ARGV[i + 3] == '' then
      redis.call('HDEL', key, 'last_error')
    else
      redis.call('HSET', key, 'last_error', string.sub(ARGV[i + 3], 2))
    end
    if state == 'pending' or state == 'sending' or state == 'uncertain' then
      redis.call('ZADD', p .. ':unsettled:' .. shard, rid, rid)
    else
      redis.call('ZREM', p .. ':unsettled:' .. shard, rid)
    end
    if state == 'dead' then
      redis.call('ZADD', p .. ':dead:replies', rid, rid)
    else
      redis.call('ZREM', p .. ':dead:replies', rid)
    end
  end
end
return 1
"""
)

# ARGV: prefix, now, all ("1" or "0"), event id count, event ids..., reply ids...
REPLAY = """
local p, now, all, nev = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local events, replies = {}, {}
if all then
  events = redis.call('ZRANGE', p .. ':dead:events', 0, -1)
  replies = redis.call('ZRANGE', p .. ':dead:replies', 0, -1)
else
  for i = 5, 4 + nev do events[#events + 1] = ARGV[i] end
  for i = 5 + nev, #ARGV do replies[#replies + 1] = ARGV[i] end
end
local count = 0
for _, id in ipairs(events) do
  if redis.call('ZREM', p .. ':dead:events', id) == 1 then
    local key = p .. ':e:' .. id
    local shard = redis.call('HGET', key, 'shard')
    redis.call('HSET', key, 'state', 'p', 'attempts', 0)
    redis.call('HDEL', key, 'done_at')
    redis.call('ZADD', p .. ':pending:' .. shard, id, id)
    redis.call('ZADD', p .. ':replayed:events:' .. shard, id, id)
    count = count + 1
  end
end
for _, rid in ipairs(replies) do
  if redis.call('ZREM', p .. ':dead:replies', rid) == 1 then
    local key = p .. ':r:' .. rid
    local shard = redis.call('HGET', key, 'shard')
    redis.call('HSET', key, 'state', 'pending', 'attempts', 0, 'created', now)
    redis.call('ZADD', p .. ':unsettled:' .. shard, rid, rid)
    redis.call('ZADD', p .. ':replayed:replies:' .. shard, rid, rid)
    count = count + 1
  end
end
return count
"""

# ARGV: prefix, kind ("events" | "replies"), shards... Returns the ids and forgets them.
TAKE_REPLAYED = """
local p, kind = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  local key = p .. ':replayed:' .. kind .. ':' .. ARGV[i]
  for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do out[#out + 1] = id end
  redis.call('DEL', key)
end
return out
"""

# ARGV: prefix, done_before, max events to look at. Returns {removed, looked at}.
PURGE = """
local p, before, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', p .. ':done', '-inf', '(' .. before, 'LIMIT', 0, max)
local removed = 0
for _, id in ipairs(ids) do
  local rids = redis.call('LRANGE', p .. ':er:' .. id, 0, -1)
  local keep = false
  for _, rid in ipairs(rids) do
    local state = redis.call('HGET', p .. ':r:' .. rid, 'state')
    if state ~= 'sent' and state ~= 'dropped' then keep = true end
  end
  if not keep then
    local dedup = redis.call('HGET', p .. ':e:' .. id, 'dedup')
    if dedup then redis.call('HDEL', p .. ':dedup', dedup) end
    for _, rid in ipairs(rids) do redis.call('DEL', p .. ':r:' .. rid) end
    redis.call('DEL', p .. ':e:' .. id, p .. ':er:' .. id)
    redis.call('ZREM', p .. ':done', id)
    removed = removed + 1
  end
end
return {removed, #ids}
"""

# ARGV: prefix, shard count. Returns {pending, dead, unsettled, oldest received_at or ""}
# (the oldest among each shard's first pending event: ids grow in arrival order).
STATS = """
local p, shards = ARGV[1], tonumber(ARGV[2])
local pending, unsettled, oldest = 0, 0, nil
for s = 0, shards - 1 do
  pending = pending + redis.call('ZCARD', p .. ':pending:' .. s)
  unsettled = unsettled + redis.call('ZCARD', p .. ':unsettled:' .. s)
  local first = redis.call('ZRANGE', p .. ':pending:' .. s, 0, 0)
  if first[1] then
    local rcv = tonumber(redis.call('HGET', p .. ':e:' .. first[1], 'rcv'))
    if rcv and (oldest == nil or rcv < oldest) then oldest = rcv end
  end
end
local dead = redis.call('ZCARD', p .. ':dead:events') + redis.call('ZCARD', p .. ':dead:replies')
return {pending, dead, unsettled, oldest and string.format('%.17g', oldest) or ''}
"""

# ARGV: prefix, field, at_ms. Keeps the latest.
TOUCH_WINDOW = """
local key, field, at = ARGV[1] .. ':win', ARGV[2], tonumber(ARGV[3])
local current = redis.call('HGET', key, field)
if not current or at > tonumber(current) then redis.call('HSET', key, field, at) end
return 1
"""

# ARGV: prefix, HSCAN cursor, opened_before_ms, step. Returns {next cursor, removed}: the
# caller loops until the cursor is "0". A field touched meanwhile is compared as it is now.
FORGET_WINDOWS = """
local key, before = ARGV[1] .. ':win', tonumber(ARGV[3])
local page = redis.call('HSCAN', key, ARGV[2], 'COUNT', tonumber(ARGV[4]))
local fields, removed = page[2], 0
for i = 1, #fields, 2 do
  if tonumber(fields[i + 1]) < before then
    removed = removed + redis.call('HDEL', key, fields[i])
  end
end
return {page[1], removed}
"""

# ARGV: prefix, shard count. Returns per shard {pending, received_at of its first or ""}.
SHARD_LAG = """
local p, shards = ARGV[1], tonumber(ARGV[2])
local out = {}
for s = 0, shards - 1 do
  local key = p .. ':pending:' .. s
  local first = redis.call('ZRANGE', key, 0, 0)
  local rcv = first[1] and redis.call('HGET', p .. ':e:' .. first[1], 'rcv') or ''
  out[#out + 1] = {redis.call('ZCARD', key), rcv or ''}
end
return out
"""
