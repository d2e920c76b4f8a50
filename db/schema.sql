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
ALTER TABLE photos ADD COLUMN IF NOT EXISTS captured timestamp, ADD COLUMN IF NOT EXISTS camera text; -- older data
CREATE INDEX IF NOT EXISTS photos_by_source ON photos (source, id);

-- A conversion's row is also the converter's outbox: it is expanded into jobs once, then marked expanded.
CREATE TABLE IF NOT EXISTS conversions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    photo_id    bigint NOT NULL REFERENCES photos,
    operations  text NOT NULL,              -- the operations file as posted
    expanded    timestamptz,                -- when its jobs were made and their messages confirmed; NULL: still to do
    error       text,                       -- why it could not be expanded (its operations do not parse)
    created     timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE conversions ADD COLUMN IF NOT EXISTS expanded timestamptz, ADD COLUMN IF NOT EXISTS error text; -- older data
CREATE INDEX IF NOT EXISTS conversions_to_expand ON conversions (id) WHERE expanded IS NULL;

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
CREATE INDEX IF NOT EXISTS jobs_by_update ON jobs (updated); -- the status page's last hour
CREATE INDEX IF NOT EXISTS jobs_failed ON jobs (updated) WHERE status = 'failed'; -- and its latest failures, however rare


-- The API's JSON documents, derived here so that each has one definition beside its data.
CREATE OR REPLACE VIEW photo_documents AS
SELECT id, json_build_object('id', id, 'width', width, 'height', height, 'format', format, 'bytes', bytes, 'source', source,
    'created', created, 'captured', captured, 'camera', camera) AS document, source, created
FROM photos;

-- A conversion's status: failed when it could not be expanded, pending until it has jobs, running while any job is
-- unfinished, then failed if any job failed, else done.
CREATE OR REPLACE VIEW conversion_states AS
SELECT c.id, CASE WHEN c.error IS NOT NULL THEN 'failed' WHEN count(j.id) = 0 THEN 'pending'
        WHEN bool_or(j.status IN ('queued', 'running')) THEN 'running' WHEN bool_or(j.status = 'failed') THEN 'failed'
        ELSE 'done' END AS status
FROM conversions c LEFT JOIN jobs j ON j.conversion_id = c.id
GROUP BY c.id;

-- A conversion with its status and its jobs.
CREATE OR REPLACE VIEW conversion_documents AS
SELECT c.id, json_build_object('id', c.id, 'photoId', c.photo_id, 'status', (SELECT status FROM conversion_states s WHERE s.id = c.id),
    'error', c.error,
    'jobs', coalesce(json_agg(json_build_object('id', j.id, 'name', j.name, 'status', j.status, 'error', j.error,
        'output', CASE WHEN j.status = 'done' THEN '/jobs/' || j.id || '/output' END) ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL),
        '[]')) AS document
FROM conversions c LEFT JOIN jobs j ON j.conversion_id = c.id
GROUP BY c.id;

-- The status page's one document (GET /stats): counts by status, the jobs finished in each of the last 60 minutes, the
-- latest conversions with their jobs, and the latest failures with their reasons.
CREATE OR REPLACE VIEW stats AS
SELECT json_build_object(
    'photos', (SELECT count(*) FROM photos),
    'conversions', (SELECT coalesce(json_object_agg(status, n), '{}') FROM (SELECT status, count(*) AS n FROM conversion_states GROUP BY status) s),
    'jobs', (SELECT coalesce(json_object_agg(status, n), '{}') FROM (SELECT status, count(*) AS n FROM jobs GROUP BY status) s),
    'minutes', (SELECT json_agg(json_build_object('at', minute, 'done', coalesce(done, 0), 'failed', coalesce(failed, 0))
            ORDER BY minute)
        FROM generate_series(date_trunc('minute', now()) - interval '59 minutes', now(), interval '1 minute') AS minute
        LEFT JOIN (SELECT date_trunc('minute', updated) AS at, count(*) FILTER (WHERE status = 'done') AS done,
                count(*) FILTER (WHERE status = 'failed') AS failed
            FROM jobs WHERE updated >= date_trunc('minute', now()) - interval '59 minutes' GROUP BY 1) AS finished ON at = minute),
    'latest', (SELECT coalesce(json_agg(document ORDER BY id DESC), '[]')
        FROM (SELECT * FROM conversion_documents ORDER BY id DESC LIMIT 6) c),
    'failures', (SELECT coalesce(json_agg(f ORDER BY at DESC), '[]') FROM (
        (SELECT conversion_id AS conversion, id AS job, name, error, updated AS at FROM jobs WHERE status = 'failed'
            ORDER BY updated DESC LIMIT 10)
        UNION ALL
        (SELECT id, NULL, NULL, error, expanded FROM conversions WHERE error IS NOT NULL ORDER BY id DESC LIMIT 10)
        ORDER BY at DESC LIMIT 10) f)
) AS document;
