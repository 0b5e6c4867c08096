-- name: notify
-- Wakes whoever LISTENs on channel $1: the catalog caches of running instances after a
-- catalog load, the outbox relays after an order (events/outbox_wakeup.py).
SELECT pg_notify($1, '');
