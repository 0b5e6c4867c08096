-- name: outbox_claim_batch
-- Unsent events that are due, oldest first, locked for this relay's transaction; rows
-- another relay holds are skipped, so several relays never publish the same row at the
-- same time. (Rows deferred and not yet due are read and passed over: a handful, except
-- when no queue is bound at all, and then the relay backs off between batches.)
-- `attributes` is the envelope without `data` (for the ce- headers); `body` is the whole
-- envelope as JSON text, sent as is. `created_at` (the order's transaction time) is the
-- AMQP timestamp.
SELECT id, event_id, event_type, routing_key, created_at,
       payload - 'data' AS attributes,
       payload::text AS body
  FROM outbox
 WHERE published_at IS NULL
   AND next_attempt_at <= now()
 ORDER BY id
 LIMIT $1
   FOR UPDATE SKIP LOCKED;

-- name: outbox_record_outcomes
-- One statement for the whole batch: confirmed rows get published_at, the others keep it
-- NULL (to be sent again) with the error; every row counts one more attempt. A deferred
-- row is not due again for $6 * 2^(its attempts before this one) seconds, at most $5.
UPDATE outbox AS o
   SET published_at = CASE WHEN r.sent THEN now() END,
       attempts = o.attempts + 1,
       last_error = r.error,
       next_attempt_at = CASE
           WHEN r.deferred
           THEN now() + make_interval(secs => least($5, $6 * power(2, least(o.attempts, 30))))
           ELSE o.next_attempt_at
       END
  FROM unnest($1::bigint[], $2::boolean[], $3::text[], $4::boolean[])
       AS r (id, sent, error, deferred)
 WHERE o.id = r.id;

-- name: outbox_backlog
-- Events not yet confirmed by the broker, and the age in seconds of the oldest one.
SELECT count(*) AS size,
       COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest_age
  FROM outbox
 WHERE published_at IS NULL;

-- name: outbox_delete_published
-- Housekeeping: published rows past their retention, at most $2 per statement so one
-- run never holds long locks.
DELETE FROM outbox
 WHERE id IN (SELECT id
                FROM outbox
               WHERE published_at < now() - make_interval(secs => $1)
               LIMIT $2);

-- name: outbox_waiting_for_a_queue
-- Unsent events the relay found no queue bound for, by routing key: the first queue bound
-- for them gets them (`events tail` asks before it binds its own).
SELECT routing_key, count(*) AS waiting
  FROM outbox
 WHERE published_at IS NULL AND last_error LIKE 'unroutable:%'
 GROUP BY routing_key;
