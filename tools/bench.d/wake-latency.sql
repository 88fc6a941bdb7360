-- Wake-up latency of the probes, in milliseconds: from the probe's commit
-- stamp (created_at) to the start of the transaction that claimed it
-- (claimed_at), and to the completion of its write-back (completed_at).
SELECT round(percentile_cont(0.50) WITHIN GROUP (ORDER BY claim_ms)::numeric,
             3),
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY claim_ms)::numeric,
             3),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY claim_ms)::numeric,
             3),
       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY done_ms)::numeric,
             3),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY done_ms)::numeric,
             3),
       count(*)
FROM (SELECT extract(epoch FROM claimed_at - created_at) * 1000 AS claim_ms,
             extract(epoch FROM completed_at - created_at) * 1000 AS done_ms
      FROM imagen.jobs
      WHERE owner_user_id = 'bench-wake' AND status = 'done') AS probe;
