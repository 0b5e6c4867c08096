-- An event the broker cannot route (no queue bound for its routing key) or whose envelope
-- cannot be sent waits before its next try, alone: the relay used to back off as a whole
-- after such a batch, so one permanently unroutable event at the head of the outbox held
-- every later event to a batch per back-off.
--
-- next_attempt_at is '-infinity' for a row never deferred, so one range condition
-- (next_attempt_at <= now()) on one index finds every row due, fresh ones first (by id),
-- then deferred ones by when they fell due; a scan stops at the first row not yet due
-- instead of reading every deferred row.

ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT '-infinity';

CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, id) WHERE published_at IS NULL;
-- outbox_unpublished_idx (id order) stays while a rolling upgrade replaces the previous
-- release, whose relay claims by id alone; a later migration drops it.
