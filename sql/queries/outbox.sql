-- name: outbox_claim_batch
-- Unsent events that are due, locked for this relay's transaction: never-deferred ones
-- oldest first, then deferred ones in the order they fell due (the order of
-- outbox_due_idx). Rows another relay holds are skipped, so several relays never publish
-- the same row at the same time.
-- `attributes` is the envelope without `data` (for the ce- headers); `body` is the whole
-- envelope as JSON text, sent as is. `created_at` (the order's transaction time) is the
-- AMQP timestamp.
SELECT id, event_id, event_type, routing_key, created_at,
       payload - 'data' AS attributes,
       payload::text AS body
  FROM outbox
 WHERE published_at IS NULL
   AND next_attempt_at <= now()
 ORDER BY next_attempt_at, id
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

-- name: outbox_notify
-- Wakes the relays that LISTEN on channel $1 (events/outbox_wakeup.py).
SELECT pg_notify($1, '');

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
