-- name: ping
-- Answers at once when the connection and the server are alive.
SELECT 1;
