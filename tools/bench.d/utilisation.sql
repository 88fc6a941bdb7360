-- Slot utilisation of a drain of :'owner' in percent: the work the jobs
-- asked for (count x :delay_ms, the null backend's fixed delay) over the
-- capacity offered (:slots x the wall time from the first claim to the
-- last completion, database clock). Claim, hand-off and write-back time
-- all count as idle, which is what the measure is for.
SELECT round(100.0 * count(*) * :delay_ms / 1000.0
             / (:slots * extract(epoch FROM max(completed_at)
                                            - min(claimed_at)))::numeric,
             2)
FROM imagen.jobs
WHERE owner_user_id = :'owner' AND status = 'done';
