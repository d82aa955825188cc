-- Accept the events of one webhook in one atomic step: dedupe, ordering per person, delivery
-- records, timelines, metrics and RQ jobs. ARGV[1] is the plan, one MessagePack map that
-- bridge/deliveries.py builds (_Plan.packed); every value in it is a string.
--
-- All reads come first and all writes after: Redis checks for OOM at a script's first write, so a
-- full Redis refuses the whole acceptance rather than keeping part of it.
--
-- The RQ jobs are written exactly as RQ 3's Queue.enqueue_job writes them: a job behind an
-- unfinished job about the same person as Queue.setup_dependencies defers it (deferred registry,
-- the parent's dependents set, its own dependencies set), any other job as Queue._enqueue_job
-- queues it. tests/test_acceptance_script.py compares both with what RQ itself writes.
--
-- Keys built here (a job's, a first delivery's record) are not in KEYS: like RQ's own, the bridge
-- runs on one Redis, not a cluster.

local JOB = 'rq:job:'
local DONE = {finished = true, failed = true, stopped = true, canceled = true}
local plan = cmsgpack.unpack(ARGV[1])
local counters_key, record_prefix, timeline_suffix = plan.counters_key, plan.record_prefix, plan.timeline_suffix
local delivery_ttl = tonumber(plan.delivery_ttl)
local events = plan.events

-- Read everything the decisions need.
local seen = {}      -- dedupe key -> delivery id already there
local last_job = {}  -- subject key -> its last job, when that job is not finished
for _, event in ipairs(events) do
  for _, entry in ipairs(event.keys) do
    if seen[entry[1]] == nil then
      seen[entry[1]] = redis.call('GET', entry[1]) or false
    end
  end
  -- Stored already by this very acceptance, run again after a lost reply. (Its record says so, not its
  -- dedupe key: that key may have expired or been evicted first.)
  event.stored = redis.call('EXISTS', record_prefix .. event.id) == 1
  for _, job in ipairs(event.jobs) do
    if job.subject ~= '' and last_job[job.subject] == nil then
      local previous = redis.call('GET', job.subject)
      local status = previous and redis.call('HGET', JOB .. previous, 'status')
      last_job[job.subject] = (status and not DONE[status]) and previous or false
    end
  end
end

-- Write: a duplicate only counts; a new event gets its keys, record, timeline, metrics and jobs.
local answers = {}
for event_index, event in ipairs(events) do
  local first = false
  for _, entry in ipairs(event.keys) do
    if seen[entry[1]] then
      first = seen[entry[1]]
      break
    end
  end
  if event.stored then
    answers[event_index] = ''  -- this very acceptance, run again after a lost reply: already stored
  elseif first then
    redis.call('HINCRBY', record_prefix .. first, 'duplicates', 1)
    for _, field in ipairs(event.duplicate_counters) do
      redis.call('HINCRBY', counters_key, field, 1)
    end
    answers[event_index] = first
  else
    for _, entry in ipairs(event.keys) do
      redis.call('SET', entry[1], event.id, 'EX', entry[2])
      seen[entry[1]] = event.id  -- a later copy in the same batch is a duplicate of this one
    end
    local record_key, timeline_key = record_prefix .. event.id, record_prefix .. event.id .. timeline_suffix
    redis.call('HSET', record_key, unpack(event.record))
    redis.call('EXPIRE', record_key, delivery_ttl)
    redis.call('RPUSH', timeline_key, unpack(event.timeline))
    redis.call('EXPIRE', timeline_key, delivery_ttl)
    redis.call('ZADD', plan.index_key, event.received_at, event.id)
    if plan.trim_below ~= '' then
      redis.call('ZREMRANGEBYSCORE', plan.index_key, '-inf', plan.trim_below)
    end
    for _, field in ipairs(event.counters) do
      redis.call('HINCRBY', counters_key, field, 1)
    end
    for _, job in ipairs(event.jobs) do
      local job_key = JOB .. job.id
      local previous = job.subject ~= '' and last_job[job.subject]
      if previous then
        -- Queue.setup_dependencies: deferred behind the unfinished job, until RQ enqueues it.
        redis.call('ZADD', plan.deferred_key, job.deferred_until, job.id)
        redis.call('SADD', JOB .. previous .. ':dependents', job.id)
        redis.call('SADD', JOB .. ':' .. job.id .. ':dependencies', previous)
        redis.call('HSET', job_key, 'status', 'deferred', 'dependency_id', previous,
                   'dependency_ids', '["' .. previous .. '"]', 'allow_dependency_failures', 1,
                   'enqueue_at_front', 0, unpack(job.fields))
      else
        redis.call('HSET', job_key, 'status', 'queued', 'enqueued_at', job.enqueued_at, unpack(job.fields))
      end
      -- Job.cleanup(ttl): the job and its dependencies expire together (a new job has no dependents yet).
      redis.call('EXPIRE', job_key, delivery_ttl)
      if previous then
        redis.call('EXPIRE', JOB .. ':' .. job.id .. ':dependencies', delivery_ttl)
      else
        redis.call('RPUSH', plan.queue_key, job.id)
      end
      redis.call('SADD', plan.queues_key, plan.queue_key)
      if job.subject ~= '' then
        redis.call('SET', job.subject, job.id, 'EX', delivery_ttl)
        last_job[job.subject] = job.id  -- the next job about this person waits for this one
      end
    end
    answers[event_index] = ''
  end
end
return answers
