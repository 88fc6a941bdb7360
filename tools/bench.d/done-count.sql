-- How many jobs of :'owner' are done: what a wait for a drain polls.
SELECT count(*) FROM imagen.jobs
 WHERE owner_user_id = :'owner' AND status = 'done';
