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

