-- name: idempotency_claim
-- Inserts an in-progress claim, takes over an expired record or a stale claim, or returns
-- the existing record unchanged (claimed = false). Returns no row only when another
-- request inserted the key after this statement's snapshot was taken (it is in flight).
-- A stale claim (its process died mid-request) stored nothing, like a failed request, so
-- any request may take it over, not only one with the same hash.
-- $6 is the claiming request's id: only it may complete or release the claim.
-- The fallback SELECT reads this statement's snapshot: when a concurrent retry took over
-- an expired record meanwhile, it still shows the expired one, whose answer names an
-- order this retry did not make. It is passed over (no row: the key is in use).
-- A claim already held by $6 is this request's own: the statement's first run committed
-- it and its answer was lost with the connection (it is run again on another), so it is
-- claimed = true again, not "in use".
WITH claimed AS (
    INSERT INTO idempotency_keys AS k (scope, key, request_hash, status, claim_id)
    VALUES ($1, $2, $3, 'in_progress', $6)
    ON CONFLICT (scope, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, status = 'in_progress',
           response_status = NULL, response_body = NULL, order_id = NULL,
           created_at = now(), locked_at = now(), claim_id = EXCLUDED.claim_id
     WHERE k.created_at < now() - make_interval(secs => $4)
        OR (k.status = 'in_progress' AND k.locked_at < now() - make_interval(secs => $5))
    RETURNING k.request_hash, k.status, k.response_status, k.response_body, k.order_id,
              true AS claimed
)
SELECT request_hash, status, response_status, response_body, order_id, claimed FROM claimed
UNION ALL
SELECT request_hash, status, response_status, response_body, order_id,
       status = 'in_progress' AND claim_id IS NOT DISTINCT FROM $6
  FROM idempotency_keys
 WHERE scope = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM claimed)
   AND created_at >= now() - make_interval(secs => $4);

-- name: idempotency_release
-- Only the caller's own claim: one taken over by a retry is that retry's now.
DELETE FROM idempotency_keys
 WHERE scope = $1 AND key = $2 AND status = 'in_progress' AND claim_id = $3;

-- name: idempotency_prune
DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1);
