-- Jobs per second of one drain, on the database clock: done rows of
-- :'owner' over the span from the first claim (claimed_at is now() of the
-- claiming transaction) to the last completion.
SELECT round(count(*) / extract(epoch FROM max(completed_at) - min(claimed_at)),
             1)
FROM imagen.jobs
WHERE owner_user_id = :'owner' AND status = 'done';
