-- ImageProcessor's schema. Idempotent: the local run and compose's one-shot `schema` service apply it on every start
-- (the postgres container also runs it once, as an init script, on a new data directory).

CREATE TABLE IF NOT EXISTS photos (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path     text NOT NULL,                 -- relative to the NAS root
    format   text NOT NULL,                 -- jpeg, png, webp, gif or tiff, as ImageMagick read it
    width    int NOT NULL,
    height   int NOT NULL,
    bytes    bigint NOT NULL,
    source   text,                          -- the camera that sent it
    created  timestamptz NOT NULL DEFAULT now(),
    captured timestamp,                     -- EXIF's DateTimeOriginal: the camera's local time, no zone
    camera   text                           -- EXIF's Model
);
CREATE INDEX IF NOT EXISTS photos_by_source ON photos (source, id);

-- A conversion's row is also the converter's outbox: it is expanded into jobs once, then marked expanded.
CREATE TABLE IF NOT EXISTS conversions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    photo_id       bigint NOT NULL REFERENCES photos,
    operations     text NOT NULL,           -- the operations file as posted
    expanded       timestamptz,             -- when its jobs were made and their messages confirmed; NULL: still to do
    error          text,                    -- why it could not be expanded (its operations do not parse)
    created        timestamptz NOT NULL DEFAULT now(),
    jobs           int,                     -- how many jobs it was expanded into, counted as it is marked expanded
    jobs_finished  int NOT NULL DEFAULT 0,  -- how many of them are done or failed (the trigger `progress`)
    jobs_failed    int NOT NULL DEFAULT 0   -- and how many failed (its status: below)
);
CREATE INDEX IF NOT EXISTS conversions_to_expand ON conversions (id) WHERE expanded IS NULL;
CREATE INDEX IF NOT EXISTS conversions_failed ON conversions (id) WHERE error IS NOT NULL; -- the latest failures

-- Every new conversion is announced to the converters, which listen; they also sweep for any they missed.
CREATE OR REPLACE FUNCTION announce_conversion() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NOTIFY conversions; RETURN NULL; END $$;
CREATE OR REPLACE TRIGGER announce AFTER INSERT ON conversions FOR EACH STATEMENT EXECUTE FUNCTION announce_conversion();

-- One output image of a conversion.
CREATE TABLE IF NOT EXISTS jobs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversion_id  bigint NOT NULL REFERENCES conversions,
    name           text NOT NULL,
    steps          jsonb NOT NULL,           -- [{"Op": "resize", "Arg": "640x360"}, ...]
    status         text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    error          text,                     -- ImageMagick's reason when failed
    output         text,                     -- relative to the NAS root once done
    width          int,
    height         int,
    duration_ms    int,
    updated        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversion_id, name)             -- a conversion expanded again adds no job twice
);
CREATE INDEX IF NOT EXISTS jobs_failed ON jobs (updated) WHERE status = 'failed'; -- the latest failures, however rare

-- A conversion's status, kept with it rather than derived from its jobs each time it is read: failed when it could not
-- be expanded, pending until it is, running while any job is unfinished, then failed if any job failed, else done.
-- Added here, with what older databases lack, only while it is missing (psql's \if): an ALTER TABLE waits for every
-- transaction on its table and holds up all that come after, even with nothing to add, and a converter's expansion
-- keeps one open on conversions while its other connection waits behind it (applied under load, the API stalled 30 s).
SELECT NOT EXISTS (SELECT FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'conversions' AND column_name = 'status') AS older \gset
\if :older
ALTER TABLE photos ADD COLUMN IF NOT EXISTS captured timestamp, ADD COLUMN IF NOT EXISTS camera text;
ALTER TABLE conversions ADD COLUMN IF NOT EXISTS expanded timestamptz, ADD COLUMN IF NOT EXISTS error text,
    ADD COLUMN IF NOT EXISTS jobs int, ADD COLUMN IF NOT EXISTS jobs_finished int NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS jobs_failed int NOT NULL DEFAULT 0;
ALTER TABLE conversions ADD COLUMN status text GENERATED ALWAYS AS (
    CASE WHEN error IS NOT NULL THEN 'failed' WHEN expanded IS NULL THEN 'pending'
        WHEN jobs_finished < jobs THEN 'running' WHEN jobs_failed > 0 THEN 'failed' ELSE 'done' END) STORED;
DROP INDEX IF EXISTS jobs_by_update; -- the status page's last hour is counted in tallies now
-- Conversions expanded before their jobs were counted on them.
UPDATE conversions c SET (jobs, jobs_finished, jobs_failed) = (SELECT count(*),
        count(*) FILTER (WHERE status IN ('done', 'failed')), count(*) FILTER (WHERE status = 'failed')
    FROM jobs WHERE conversion_id = c.id)
WHERE jobs IS NULL AND expanded IS NOT NULL;
\endif

-- A conversion's jobs are counted as the converter marks it expanded: they were committed just before (Converter).
CREATE OR REPLACE FUNCTION count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    NEW.jobs := (SELECT count(*) FROM jobs WHERE conversion_id = NEW.id);
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER count_jobs BEFORE UPDATE OF expanded ON conversions
    FOR EACH ROW EXECUTE FUNCTION count_jobs();

-- Each job's move into or out of done and failed is counted on its conversion's row, so a job finished twice (a
-- redelivery) counts once, and one set back by hand is uncounted. The row's lock keeps the counts exact however many
-- of its jobs finish at once. A row trigger whose condition Postgres checks before calling it: a claim (queued to
-- running), half of every job's statements, changes no count and calls nothing (as a statement trigger it was called
-- for every update: a job's statements, from its conversion's insert to its result, took 3% more of Postgres's CPU).
CREATE OR REPLACE FUNCTION count_progress() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    UPDATE conversions
    SET jobs_finished = jobs_finished + (NEW.status IN ('done', 'failed'))::int - (OLD.status IN ('done', 'failed'))::int,
        jobs_failed = jobs_failed + (NEW.status = 'failed')::int - (OLD.status = 'failed')::int
    WHERE id = NEW.conversion_id;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER progress AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN ((OLD.status IN ('done', 'failed')) <> (NEW.status IN ('done', 'failed'))
        OR (OLD.status = 'failed') <> (NEW.status = 'failed'))
    EXECUTE FUNCTION count_progress();
DROP FUNCTION IF EXISTS progress(); -- the statement trigger's, replaced by the line above

-- Counts by status for /stats, at a cost that does not grow with history: each statement that adds, changes or removes
-- photos, conversions or jobs appends what it changed, a row per (kind, status, minute) with its count, up for new rows
-- and down for old ones. A count is the sum of its rows; the table is folded as it goes (`fold_tallies`).
CREATE TABLE IF NOT EXISTS tallies (
    kind    text NOT NULL,  -- photos, conversions or jobs
    status  text,           -- a conversion's or a job's; NULL for photos
    minute  timestamptz,    -- a job's last change, to the minute, for the status page's last hour; NULL once older
    n       bigint NOT NULL
);
-- Folds the tallies into a row per key (a job's minutes older than the hour into its status's row), taking only rows
-- that no other fold holds, so that no statement ever waits on another here. One tally in a hundred calls it.
CREATE OR REPLACE FUNCTION fold_tallies() RETURNS void LANGUAGE sql AS $$
    WITH folded AS (DELETE FROM tallies WHERE ctid IN (SELECT ctid FROM tallies FOR UPDATE SKIP LOCKED) RETURNING *)
    INSERT INTO tallies SELECT kind, status, CASE WHEN minute > now() - interval '1 hour' THEN minute END, sum(n)
    FROM folded GROUP BY 1, 2, 3 HAVING sum(n) <> 0;
$$;
-- Appends the rows a statement inserted (TG_ARGV[0] 1) or deleted (-1) to the tallies. Rows are read through JSON, so
-- that one function serves every table: one without status or updated has NULL there.
CREATE OR REPLACE FUNCTION tally() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO tallies
    SELECT TG_TABLE_NAME, r ->> 'status', date_trunc('minute', (r ->> 'updated')::timestamptz),
        TG_ARGV[0]::int * count(*)
    FROM (SELECT to_jsonb(changed) AS r FROM changed) AS rows GROUP BY 1, 2, 3;
    PERFORM fold_tallies() WHERE random() < 0.01;
    RETURN NULL;
END $$;
-- The same for an update, in one call: its old rows down, its new ones up, the keys whose count did not move left out
-- (a conversion's count of finished jobs changes on every job; its status, only on the last).
CREATE OR REPLACE FUNCTION tally_changes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO tallies
    SELECT TG_TABLE_NAME, r ->> 'status', date_trunc('minute', (r ->> 'updated')::timestamptz), sum(n)
    FROM (SELECT to_jsonb(o) AS r, -1 AS n FROM old_rows o UNION ALL SELECT to_jsonb(n), 1 FROM new_rows n) AS rows
    GROUP BY 1, 2, 3 HAVING sum(n) <> 0;
    PERFORM fold_tallies() WHERE random() < 0.01;
    RETURN NULL;
END $$;

-- The tallies as the tables count them: what the tallies start from, and what rebuilds them when they are wrong (after
-- triggers were disabled while rows changed), with the one line README gives: SELECT rebuild_tallies(). Writers wait
-- meanwhile, as the tallies are locked, so that a fold can neither move a row the rebuild removes nor be counted twice.
CREATE OR REPLACE VIEW counted_tallies AS
SELECT 'photos' AS kind, NULL::text AS status, NULL::timestamptz AS minute, count(*) AS n FROM photos HAVING count(*) > 0
UNION ALL
SELECT 'conversions', status, NULL, count(*) FROM conversions GROUP BY status
UNION ALL
SELECT 'jobs', status, CASE WHEN updated > now() - interval '1 hour' THEN date_trunc('minute', updated) END, count(*)
FROM jobs GROUP BY 2, 3;
CREATE OR REPLACE FUNCTION rebuild_tallies() RETURNS void LANGUAGE sql AS $$
    LOCK TABLE tallies IN EXCLUSIVE MODE;
    DELETE FROM tallies;
    INSERT INTO tallies SELECT * FROM counted_tallies;
$$;
-- A TRUNCATE removes rows without telling the row triggers: the tallies are counted again from what is left.
CREATE OR REPLACE FUNCTION tally_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    PERFORM rebuild_tallies();
    RETURN NULL;
END $$;

-- The triggers, and once the count of older data (what was there before the tallies, while they are empty), in one
-- transaction: creating a trigger holds off the table's writers until it ends, so no row is counted twice or not at
-- all. Jobs first, then conversions: a job's update goes on to its conversion's row (trigger `progress`), so applying
-- this file while the services run makes no deadlock. The rest of the file runs a statement at a time.
BEGIN;
CREATE OR REPLACE TRIGGER tally_added AFTER INSERT ON jobs REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tally('1');
CREATE OR REPLACE TRIGGER tally_changed AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_changes();
CREATE OR REPLACE TRIGGER tally_removed AFTER DELETE ON jobs REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tally('-1');
CREATE OR REPLACE TRIGGER tally_added AFTER INSERT ON conversions REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tally('1');
CREATE OR REPLACE TRIGGER tally_changed AFTER UPDATE ON conversions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_changes();
CREATE OR REPLACE TRIGGER tally_removed AFTER DELETE ON conversions REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tally('-1');
CREATE OR REPLACE TRIGGER tally_added AFTER INSERT ON photos REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tally('1');
CREATE OR REPLACE TRIGGER tally_removed AFTER DELETE ON photos REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tally('-1');
CREATE OR REPLACE TRIGGER tally_truncated AFTER TRUNCATE ON jobs FOR EACH STATEMENT EXECUTE FUNCTION tally_truncate();
CREATE OR REPLACE TRIGGER tally_truncated AFTER TRUNCATE ON conversions
    FOR EACH STATEMENT EXECUTE FUNCTION tally_truncate();
CREATE OR REPLACE TRIGGER tally_truncated AFTER TRUNCATE ON photos FOR EACH STATEMENT EXECUTE FUNCTION tally_truncate();
SELECT rebuild_tallies() WHERE NOT EXISTS (SELECT FROM tallies);
COMMIT;

-- The API's JSON documents, derived here so that each has one definition beside its data. Each is built from its row,
-- so that the INSERT that makes the row returns its document in the same statement (the API's 201 and 202).
CREATE OR REPLACE FUNCTION photo_document(p photos) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', p.id, 'width', p.width, 'height', p.height, 'format', p.format, 'bytes', p.bytes,
        'source', p.source, 'created', p.created)
$$;
CREATE OR REPLACE VIEW photo_documents AS SELECT id, photo_document(photos) AS document, source, created FROM photos;

-- A conversion with its status and its jobs, built for each row read: the latest six cost six.
CREATE OR REPLACE FUNCTION conversion_document(c conversions) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', c.id, 'photoId', c.photo_id, 'status', c.status, 'error', c.error,
        'jobs', (SELECT coalesce(json_agg(json_build_object('id', j.id, 'name', j.name, 'status', j.status,
                'error', j.error, 'output', CASE WHEN j.status = 'done' THEN '/jobs/' || j.id || '/output' END)
            ORDER BY j.id), '[]')
            FROM jobs j WHERE j.conversion_id = c.id))
$$;
CREATE OR REPLACE VIEW conversion_documents AS SELECT id, conversion_document(c) AS document FROM conversions c;

-- The status page's one document (GET /stats): counts by status, the jobs finished in each of the last 60 minutes (from
-- the tallies), the latest conversions with their jobs, and the latest failures with their reasons.
CREATE OR REPLACE VIEW stats AS
WITH counts AS (SELECT kind, status, sum(n) AS n FROM tallies GROUP BY kind, status HAVING sum(n) <> 0)
SELECT json_build_object(
    'photos', (SELECT coalesce(sum(n), 0) FROM counts WHERE kind = 'photos'),
    'conversions', (SELECT coalesce(json_object_agg(status, n), '{}') FROM counts WHERE kind = 'conversions'),
    'jobs', (SELECT coalesce(json_object_agg(status, n), '{}') FROM counts WHERE kind = 'jobs'),
    'minutes', (SELECT json_agg(json_build_object('at', minute, 'done', coalesce(done, 0), 'failed', coalesce(failed, 0))
            ORDER BY minute)
        FROM generate_series(date_trunc('minute', now()) - interval '59 minutes', now(), interval '1 minute') AS minute
        LEFT JOIN (SELECT tallies.minute AS at, sum(n) FILTER (WHERE status = 'done') AS done,
                sum(n) FILTER (WHERE status = 'failed') AS failed
            FROM tallies WHERE kind = 'jobs' AND tallies.minute >= date_trunc('minute', now()) - interval '59 minutes'
            GROUP BY 1) AS finished ON at = minute),
    'latest', (SELECT coalesce(json_agg(document ORDER BY id DESC), '[]')
        FROM (SELECT * FROM conversion_documents ORDER BY id DESC LIMIT 6) c),
    'failures', (SELECT coalesce(json_agg(f ORDER BY at DESC), '[]') FROM (
        (SELECT conversion_id AS conversion, id AS job, name, error, updated AS at FROM jobs WHERE status = 'failed'
            ORDER BY updated DESC LIMIT 10)
        UNION ALL
        (SELECT id, NULL, NULL, error, expanded FROM conversions WHERE error IS NOT NULL ORDER BY id DESC LIMIT 10)
        ORDER BY at DESC LIMIT 10) f)
) AS document;
DROP VIEW IF EXISTS conversion_states; -- older data: a conversion's status is its own column now

