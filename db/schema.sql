-- ImageProcessor's schema. Idempotent: the local run applies it on every start, and the postgres container runs it
-- once as an init script.

CREATE TABLE IF NOT EXISTS photos (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path     text NOT NULL,                 -- relative to the NAS root
    format   text NOT NULL,                 -- jpeg, png, webp, gif or tiff, as ImageMagick read it
    width    int NOT NULL,
    height   int NOT NULL,
    bytes    bigint NOT NULL,
    source   text,                          -- the camera that sent it
    created  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS conversions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    photo_id    bigint NOT NULL REFERENCES photos,
    operations  text NOT NULL,              -- the operations file as posted
    created     timestamptz NOT NULL DEFAULT now()
);

-- One output image of a conversion. A conversion's status is derived from its jobs: none yet is 'pending'.
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
    UNIQUE (conversion_id, name)             -- a redelivered conversion cannot add its jobs twice
);

-- The transactional outbox: a message is recorded in the same statement as the row it announces, and the converter's
-- relay publishes it and deletes it once the broker has confirmed it, so a crash between the two loses nothing.
CREATE TABLE IF NOT EXISTS outbox (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue    text NOT NULL,                 -- conversions or jobs
    message  bigint NOT NULL                -- the id the message carries
);

-- Each insert wakes the relay at once; it also looks every second.
CREATE OR REPLACE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
