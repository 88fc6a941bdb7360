-- Inserts :n jobs for the null backend in one statement, the way a web
-- application's bulk insert would: one transaction, hence one NOTIFY.
-- Fresh statistics keep the claim on its partial index from the first run.
INSERT INTO imagen.jobs (owner_user_id, prompt, backend)
SELECT :'owner', 'benchmark job ' || g, 'null'
FROM generate_series(1, :n) AS g;

ANALYZE imagen.jobs;
