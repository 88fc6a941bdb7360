-- Jobs of :'owner' that ran more than once or do not have exactly one
-- image registered for them: every row counted here breaks the promise
-- that several workers never run one job twice.
SELECT count(*)
FROM imagen.jobs AS j
WHERE j.owner_user_id = :'owner'
  AND (j.status <> 'done'
       OR j.attempt <> 1
       OR j.image_id IS NULL
       OR (SELECT count(*) FROM imagen.images AS i WHERE i.job_id = j.id)
          <> 1);
