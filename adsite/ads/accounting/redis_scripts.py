"""The Lua scripts of ``RedisLedger`` (``redis_ledger``), each atomic on the keys of one hash slot except the
three that run on one Redis only (``SNAPSHOT``, ``RESERVE``, ``VOID``). Their keys, arguments and replies are described
above each; the invariants they keep are in ``redis_ledger``'s module docstring."""

from __future__ import annotations

from adsite.ads.accounting.contract import REPEAT_BUCKETS

# Every script that changes anything touches the keys of one hash slot (``redis_ledger``'s module docstring,
# "Keys and invariants"), but ``RESERVE`` and ``VOID``; they and the one read-only script, ``SNAPSHOT``, run on
# one Redis only.

# What a reservation's script answers, having changed nothing, when Redis runs it past its deadline.
LATE_CODE = 9

# Whether Redis's clock is past a deadline (microseconds since the epoch; '0' or nil: none), and the code to
# answer then. Lua numbers are doubles, exact for integers up to 2^53 (microseconds until the year 2255).
LATE_LUA = f"local LATE_CODE = {LATE_CODE}\n" + """
local function late(deadline)
  local d = tonumber(deadline or '0')
  if d == 0 then return false end
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000000 + tonumber(now[2]) > d
end
"""

def _as_function(name: str, source: str) -> str:
    """A script's source as a Lua function of its own KEYS and ARGV (the same code, called from another script)."""
    return f"local function {name}(KEYS, ARGV)\n{source}\nend\n"


# How long a reservation's receipt is kept, in seconds: the time in which a reservation whose answer was lost
# can still be voided (``RedisLedger``: by the process's next reservation once Redis answers). A receipt is
# written only by a reservation that held or charged something: 88 bytes a key (`MEMORY USAGE`).
RECEIPT_TTL_S = 600

# A visitor's caps (the visitor's slot). KEYS[1] freq hash; ARGV hour field, day field, cap per hour,
# cap per day, ttl, deadline. 0: counted (the caps are held for this impression), 3/4: capped by the
# hour/day, LATE_CODE: past the deadline.
CAPS = LATE_LUA + """
if late(ARGV[6]) then return LATE_CODE end
local caph = tonumber(ARGV[3])
local capd = tonumber(ARGV[4])
if caph > 0 and tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') >= caph then return 3 end
if capd > 0 and tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0') >= capd then return 4 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return 0
"""

# Gives back caps held by ``CAPS`` for an impression that will not run (the budget refused it).
CAPS_RELEASE = """
if tonumber(redis.call('HINCRBY', KEYS[1], ARGV[1], -1)) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
if tonumber(redis.call('HINCRBY', KEYS[1], ARGV[2], -1)) <= 0 then redis.call('HDEL', KEYS[1], ARGV[2]) end
return 0
"""

# A campaign's money (the campaign's slot). KEYS[1] spend hash, KEYS[2] the campaign's report hash of the
# hour; ARGV total field, day field, total budget, daily budget, price, report ttl, check only (1: say
# whether the budget allows, change nothing), deadline. 0: allowed (and, unless check only, charged and
# counted), 1/2: out of the total/daily budget, LATE_CODE: past the deadline.
BUDGET = LATE_LUA + """
if late(ARGV[8]) then return LATE_CODE end
local total = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if total >= tonumber(ARGV[3]) then return 1 end
local today = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if today >= tonumber(ARGV[4]) then return 2 end
if ARGV[7] == '1' then return 0 end
local price = tonumber(ARGV[5])
redis.call('HINCRBY', KEYS[2], 'served', 1)
if price > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], price)
  redis.call('HINCRBY', KEYS[1], ARGV[2], price)
  redis.call('HINCRBY', KEYS[2], 'imp_billed', 1)
  redis.call('HINCRBY', KEYS[2], 'spend', price)
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
return 0
"""

# One impression's charge and count given back (the campaign's slot), as ``BUDGET`` made them. KEYS[1] spend
# hash, KEYS[2] the report hash of the reservation's hour; ARGV total field, day field, price.
REFUND = """
local price = tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[2], 'served', -1)
if price > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -price)
  redis.call('HINCRBY', KEYS[1], ARGV[2], -price)
  redis.call('HINCRBY', KEYS[2], 'imp_billed', -1)
  redis.call('HINCRBY', KEYS[2], 'spend', -price)
end
return 0
"""

# The Redis Cluster's steps of a reservation (``RedisLedger._reserve_in_steps``), each with a receipt in its own
# slot: KEYS as ``CAPS`` / ``BUDGET``'s, then the receipt key; ARGV as theirs, then the receipt's ttl. A receipt
# already there (the step's void came first) answers LATE_CODE and changes nothing; caps held, or a budget
# charged, leave the receipt '1'.
CAPS_STEP = LATE_LUA + _as_function("caps_hold", CAPS) + """
if redis.call('EXISTS', KEYS[2]) == 1 then return LATE_CODE end
local caps = caps_hold({KEYS[1]}, ARGV)
if caps == 0 then redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[7])) end
return caps
"""

BUDGET_STEP = LATE_LUA + _as_function("budget_charge", BUDGET) + """
if redis.call('EXISTS', KEYS[3]) == 1 then return LATE_CODE end
local budget = budget_charge({KEYS[1], KEYS[2]}, ARGV)
if budget == 0 and ARGV[7] ~= '1' then redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[9])) end
return budget
"""

# The voids of those steps: what the receipt says was held or charged is given back, and the receipt becomes
# 'void' (a step that arrives later changes nothing; a second void neither). Returns 1 if something was
# given back. VOID_CAPS: KEYS[1] freq hash, KEYS[2] receipt; ARGV hour field, day field, receipt ttl.
# VOID_BUDGET: KEYS[1] spend hash, KEYS[2] report hash, KEYS[3] receipt; ARGV total field, day field, price,
# receipt ttl.
VOID_CAPS = _as_function("caps_release", CAPS_RELEASE) + """
local held = redis.call('GET', KEYS[2]) == '1'
if held then caps_release({KEYS[1]}, ARGV) end
redis.call('SET', KEYS[2], 'void', 'EX', tonumber(ARGV[3]))
return held and 1 or 0
"""

VOID_BUDGET = _as_function("refund", REFUND) + """
local charged = redis.call('GET', KEYS[3]) == '1'
if charged then refund({KEYS[1], KEYS[2]}, ARGV) end
redis.call('SET', KEYS[3], 'void', 'EX', tonumber(ARGV[4]))
return charged and 1 or 0
"""

# A click's money (the campaign's slot), once its token was new (``SET NX`` in the token's own slot).
# KEYS[1] spend hash, KEYS[2] report hash of the hour, KEYS[3] the token's charge mark; ARGV total field,
# day field, price, total budget, daily budget, report ttl, click id, mark ttl. Returns the mark
# "<code> <click id> <price charged>", code 0: billed, 1: free (no price, or no budget left); a token
# marked before (its first charge's reply was lost, then it was retried) is answered its mark, not charged.
CLICK = """
local seen = redis.call('GET', KEYS[3])
if seen then return seen end
local code = '1'
local price = tonumber(ARGV[3])
if price > 0 then
  local total = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
  local today = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
  if total < tonumber(ARGV[4]) and today < tonumber(ARGV[5]) then
    redis.call('HINCRBY', KEYS[1], ARGV[1], price)
    redis.call('HINCRBY', KEYS[1], ARGV[2], price)
    redis.call('HINCRBY', KEYS[2], 'clk_billed', 1)
    redis.call('HINCRBY', KEYS[2], 'spend', price)
    redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
    code = '0'
  end
end
local mark = code .. ' ' .. ARGV[7] .. ' ' .. (code == '0' and ARGV[3] or '0')
redis.call('SET', KEYS[3], mark, 'EX', tonumber(ARGV[8]))
return mark
"""

# What a click charge whose reply was lost did (the campaign's slot): the charge's mark when it ran, else a
# void mark for this click, so that the lost request, should it still arrive, charges nothing.
# KEYS[1] the token's charge mark; ARGV click id, mark TTL. Returns the mark.
CLICK_SETTLE = """
local seen = redis.call('GET', KEYS[1])
if seen then return seen end
local mark = '1 ' .. ARGV[1] .. ' 0'
redis.call('SET', KEYS[1], mark, 'EX', tonumber(ARGV[2]))
return mark
"""

# A viewable impression, once per serve id (the campaign's slot). KEYS[1] seen key, KEYS[2] report hash.
VIEW = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) == false then return 0 end
redis.call('HINCRBY', KEYS[2], 'viewable', 1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
return 1
"""

# the fields of a creative's statistics hash a snapshot reads: imp, clk, exp, then the repeat statistics
# (expected clicks of each bucket, then clicks of each bucket)
_REPEAT_FIELDS = tuple(f"r{b}e" for b in range(REPEAT_BUCKETS)) + tuple(f"r{b}c" for b in range(REPEAT_BUCKETS))
STATS_FIELDS = ("imp", "clk", "exp", *_REPEAT_FIELDS)

# A decision's snapshot read in one command, on one Redis only (its keys span slots: on a Redis Cluster the
# snapshot is a pipeline of the same reads, one round trip per node). Read-only. KEYS: n spend hashes, m stats
# hashes, then the visitor's freq hash when ARGV[3] is '1'; ARGV n, the day field. Returns {the spend
# hashes' t and day fields, then the stats hashes' ``STATS_FIELDS`` (flat), the freq hash's HGETALL}: the
# replies the pipeline would give, in one reply instead of n + m + 1 (a decision reads ~120 of them).
SNAPSHOT = """
local n = tonumber(ARGV[1])
local flat = {}
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i], 't', ARGV[2])
  flat[#flat + 1] = v[1]
  flat[#flat + 1] = v[2]
end
local last = #KEYS
if ARGV[3] == '1' then last = last - 1 end
for i = n + 1, last do
  local v = redis.call('HMGET', KEYS[i], FIELDS)
  for j = 1, #v do flat[#flat + 1] = v[j] end
end
local freq = {}
if ARGV[3] == '1' then freq = redis.call('HGETALL', KEYS[#KEYS]) end
return {flat, freq}
""".replace("FIELDS", ", ".join(f"'{name}'" for name in STATS_FIELDS))


# A page's reservations in one call, on one Redis only (its keys span slots: on a Redis Cluster the steps are
# the three pipelined calls of ``RedisLedger._reserve_in_steps``). For each charge in order, the same three
# steps with the same scripts: the caps held (``CAPS``), the budget charged or only checked (``BUDGET``), the
# caps given back if the budget refused (``CAPS_RELEASE``), the creative's statistics counted if it holds.
# KEYS: the visitor's freq hash, the reservation's receipt, then per charge its spend hash, report hash and
# stats hash. ARGV: '1' if there is a visitor (else no caps), the freq ttl, the report ttl, the total field,
# the day field, the deadline, the receipt's ttl, then per charge 10 values: hour field, day field, cap per
# hour, cap per day, total budget, daily budget, price, extra exposure, repeat field ('' for none), expected
# clicks (micros). Returns {caps reply, budget reply} per charge, every one {LATE_CODE, LATE_CODE} past the
# deadline or once the reservation was voided (checked once, first: the inner steps get no deadline). The
# receipt, written when any charge held, says which did ('1' or '0' per charge), for ``VOID``.
RESERVE = (
    LATE_LUA
    + _as_function("caps_hold", CAPS)
    + _as_function("budget_charge", BUDGET)
    + _as_function("caps_release", CAPS_RELEASE)
    + """
local visitor = ARGV[1] == '1'
local n = (#KEYS - 2) / 3
local out = {}
if late(ARGV[6]) or redis.call('EXISTS', KEYS[2]) == 1 then
  for i = 1, n do out[i] = {LATE_CODE, LATE_CODE} end
  return out
end
local receipt, kept = '', false
for i = 1, n do
  local a, k = 8 + (i - 1) * 10, 3 + (i - 1) * 3
  local caps = 0
  if visitor then caps = caps_hold({KEYS[1]}, {ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[2]}) end
  local held = caps == 0
  local budget = budget_charge({KEYS[k], KEYS[k + 1]}, {
    ARGV[4], ARGV[5], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[3], held and '0' or '1'})
  if budget ~= 0 then
    if held and visitor then caps_release({KEYS[1]}, {ARGV[a], ARGV[a + 1]}) end
  elseif held then
    redis.call('HINCRBY', KEYS[k + 2], 'imp', 1)
    if tonumber(ARGV[a + 7]) ~= 0 then redis.call('HINCRBY', KEYS[k + 2], 'exp', ARGV[a + 7]) end
    if ARGV[a + 8] ~= '' then redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 8], ARGV[a + 9]) end
  end
  local ran = held and budget == 0
  receipt = receipt .. (ran and '1' or '0')
  kept = kept or ran
  out[i] = {caps, budget}
end
if kept then redis.call('SET', KEYS[2], receipt, 'EX', tonumber(ARGV[7])) end
return out
"""
)

# A page's reservation voided (one Redis): with the same KEYS and ARGV as its ``RESERVE`` (the deadline is not
# read), each charge its receipt says ran is given back: the visitor's caps, the money and served count
# (``REFUND``), the creative's statistics. The receipt becomes 'void' (a ``RESERVE`` arriving later changes
# nothing; a second void neither). Returns how many impressions were given back.
VOID = (
    _as_function("caps_release", CAPS_RELEASE)
    + _as_function("refund", REFUND)
    + """
local visitor = ARGV[1] == '1'
local receipt = redis.call('GET', KEYS[2])
local given = 0
if receipt and receipt ~= 'void' then
  for i = 1, (#KEYS - 2) / 3 do
    if string.sub(receipt, i, i) == '1' then
      local a, k = 8 + (i - 1) * 10, 3 + (i - 1) * 3
      if visitor then caps_release({KEYS[1]}, {ARGV[a], ARGV[a + 1]}) end
      refund({KEYS[k], KEYS[k + 1]}, {ARGV[4], ARGV[5], ARGV[a + 6]})
      redis.call('HINCRBY', KEYS[k + 2], 'imp', -1)
      if tonumber(ARGV[a + 7]) ~= 0 then redis.call('HINCRBY', KEYS[k + 2], 'exp', -tonumber(ARGV[a + 7])) end
      if ARGV[a + 8] ~= '' then redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 8], -tonumber(ARGV[a + 9])) end
      given = given + 1
    end
  end
end
redis.call('SET', KEYS[2], 'void', 'EX', tonumber(ARGV[7]))
return given
"""
)
