-- Empties the queue between runs so that every run starts from the same
-- table; images go too, since they reference the jobs one to one.
TRUNCATE imagen.images, imagen.jobs;
