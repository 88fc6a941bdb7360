-- Rows of :'owner' that a finished drain left behind, per status, with one
-- error message: a run that leaves any is not a valid measurement.
SELECT status || '=' || count(*) || coalesce(' (' || min(error) || ')', '')
FROM imagen.jobs
WHERE owner_user_id = :'owner' AND status <> 'done'
GROUP BY status;
