-- An event the broker cannot route (no queue bound for its routing key) or whose envelope
-- cannot be sent waits before its next try, alone: the relay used to back off as a whole
-- after such a batch, so one permanently unroutable event at the head of the outbox held
-- every later event to a batch per back-off.
--
-- next_attempt_at is '-infinity' for a row never deferred. The relay still claims in id
-- order through outbox_unpublished_idx, skipping rows not yet due: an ordered index scan
-- passes over the entries of rows published since the last vacuum cheaply (they are
-- marked dead in the index once seen), where an index on (next_attempt_at, id) was read
-- as a bitmap and cost a heap visit per published row on every claim (6 ms per claim
-- with 150,000 rows published, lag spikes of 100+ ms).

ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT '-infinity';
