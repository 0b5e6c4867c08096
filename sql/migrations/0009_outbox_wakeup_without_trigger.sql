-- Relays are no longer woken by a NOTIFY from every order's transaction. Measured with
-- 16 connections inserting outbox rows while one connection LISTENs, the statement
-- trigger's NOTIFY cost PostgreSQL 0.12-0.15 ms of CPU per commit, as much again as the
-- insert itself, and it serialises commits on the notification queue's lock. The service
-- now wakes the relay of its own process directly and, from a process without one, sends
-- at most one NOTIFY per interval (events/outbox_wakeup.py); relays still poll.
--
-- During a rolling upgrade the previous release's relays find new events by their poll
-- (OUTBOX_POLL_INTERVAL) instead of at once, and its processes wake no new relay.

DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
