-- The relay claims the oldest unsent rows through outbox_unpublished_idx, a partial index
-- on (id) WHERE published_at IS NULL, and each published row leaves a dead entry in it
-- until VACUUM. While the relay keeps up, those entries sit on the index's last pages,
-- where the inserts clean them away as they go. A backlog drained after a broker outage
-- leaves them on pages no insert comes back to, and every claim walks over all of them.
-- Measured with a backlog of 400,000 events drained: a claim read 1,100 index pages
-- (2.5 ms; 88 ms for the first one) against 2 pages after a VACUUM (0.12 ms), and the
-- relay claims every few milliseconds under load. With PostgreSQL's default, autovacuum
-- waits until a fifth of the table is dead: with a week of published rows kept
-- (OUTBOX_RETENTION_SECONDS), the dead entries of days of orders.
--
-- Vacuumed instead after a fixed number of dead rows, whatever the table's size. (With
-- INDEX_CLEANUP at auto, a vacuum may still leave the indexes while dead rows sit on fewer
-- than 2% of the table's pages.) SET takes SHARE UPDATE EXCLUSIVE: orders and the relay
-- go on while it runs.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000
);
