-- A state file written by feeder at commit 3a20e72 (2026-12-02),
-- made by tests/data/state/make.py.
PRAGMA user_version=5;
BEGIN TRANSACTION;
CREATE TABLE counts (
    name TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
INSERT INTO "counts" VALUES('entries',6);
CREATE TABLE dirty_pages (page INTEGER PRIMARY KEY);
CREATE TABLE entries (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE REFERENCES seeds(name) ON DELETE CASCADE,
    stem TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    content_html TEXT NOT NULL,
    published TEXT NOT NULL,
    updated TEXT NOT NULL,
    language TEXT NOT NULL,
    pub_ts REAL NOT NULL
, archive_page INTEGER);
INSERT INTO "entries" VALUES('tag:example.org,2025:001_fixture','001_fixture.txt','001_fixture','001_fixture','Article number 1','Article number 1. A short body for the fixture.','<p>Article number 1. A short body for the fixture.</p>','2025-01-01T00:00:00+00:00','2025-01-01T00:00:00+00:00','en',1735689600.0,1);
INSERT INTO "entries" VALUES('tag:example.org,2025:004_fixture','004_fixture.txt','004_fixture','004_fixture','Article number 4','Article number 4. A short body for the fixture.','<p>Article number 4. A short body for the fixture.</p>','2025-01-04T00:00:00+00:00','2025-01-04T00:00:00+00:00','en',1735948800.0,2);
INSERT INTO "entries" VALUES('tag:example.org,2025:002_fixture','002_fixture.txt','002_fixture','002_fixture','Article number 2','Article number 2. A short body for the fixture.','<p>Article number 2. A short body for the fixture.</p>','2025-01-02T00:00:00+00:00','2025-01-02T00:00:00+00:00','en',1735776000.0,1);
INSERT INTO "entries" VALUES('tag:example.org,2025:005_fixture','005_fixture.txt','005_fixture','005_fixture','Article number 5','Article number 5. A short body for the fixture.','<p>Article number 5. A short body for the fixture.</p>','2025-01-05T00:00:00+00:00','2025-01-05T00:00:00+00:00','en',1736035200.0,NULL);
INSERT INTO "entries" VALUES('tag:example.org,2025:003_fixture','003_fixture.txt','003_fixture','003_fixture','Article number 3','Article number 3. A short body for the fixture.','<p>Article number 3. A short body for the fixture.</p>','2025-01-03T00:00:00+00:00','2025-01-03T00:00:00+00:00','en',1735862400.0,2);
INSERT INTO "entries" VALUES('tag:example.org,2025:006_fixture','006_fixture.txt','006_fixture','006_fixture','Article number 6','Article number 6. A short body for the fixture.','<p>Article number 6. A short body for the fixture.</p>','2025-01-06T00:00:00+00:00','2025-01-06T00:00:00+00:00','en',1736121600.0,NULL);
CREATE TABLE gone_pages (slug TEXT PRIMARY KEY);
CREATE TABLE hubs (
    hub TEXT PRIMARY KEY,
    time TEXT NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT
);
INSERT INTO "hubs" VALUES('https://hub.example/','2026-01-01T00:00:00+00:00',0,'HTTP 503');
CREATE TABLE ids (
    stem TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE
);
INSERT INTO "ids" VALUES('001_fixture','tag:example.org,2025:001_fixture');
INSERT INTO "ids" VALUES('004_fixture','tag:example.org,2025:004_fixture');
INSERT INTO "ids" VALUES('002_fixture','tag:example.org,2025:002_fixture');
INSERT INTO "ids" VALUES('005_fixture','tag:example.org,2025:005_fixture');
INSERT INTO "ids" VALUES('003_fixture','tag:example.org,2025:003_fixture');
INSERT INTO "ids" VALUES('006_fixture','tag:example.org,2025:006_fixture');
CREATE TABLE languages (
    code TEXT PRIMARY KEY,
    dirty INTEGER NOT NULL
);
INSERT INTO "languages" VALUES('en',0);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO "meta" VALUES('tag','{"authority": "example.org", "date": "2025"}');
INSERT INTO "meta" VALUES('rules_key','"5fa11019353bdcc3485fa41feeebf8c4adfb8ced"');
INSERT INTO "meta" VALUES('archive_pages','2');
INSERT INTO "meta" VALUES('languages_until','1796213762.984523');
INSERT INTO "meta" VALUES('sitemap_chunks','[[9, "2025-01-06T00:00:00+00:00"]]');
INSERT INTO "meta" VALUES('render_key','"9b431c2418c44eb0792dcfd192c62e66a1d0c6f8"');
INSERT INTO "meta" VALUES('base_url','"https://example.org/"');
INSERT INTO "meta" VALUES('fixture','"made by tests/data/state/make.py"');
CREATE TABLE outputs (
    path TEXT PRIMARY KEY,      -- relative to the output folder
    sha256 TEXT NOT NULL,       -- of the bytes last written there
    time TEXT NOT NULL
);
INSERT INTO "outputs" VALUES('lang/en/atom.xml','8d3f40660699f695e18aa92053075ad905a4038ecd2ff19902eeefe42b09a2aa','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('lang/en/rss.xml','76786f76ae2802c04f2b27de060cab71921b87fd8e12db8e17a44c0fbfd8513c','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('lang/en/feed.json','057d32e944224aaf4735bcfdbaa69bda20ccffa5fe8cc5c78566221fb3996d78','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('lang/en/index.html','a34a4360c6aeabc727e5fe118b05ba9f040a0b852a869b7810b8444a516411f0','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('atom.xml','6c2f8669b420b98acdaffd761e36060fffb859b9445e1b1e75c86edaf28b70f7','2026-12-02T12:16:03.048883+00:00');
INSERT INTO "outputs" VALUES('rss.xml','b00087776c9df79192a5605e0438508081eaf9345ee67dbdba80c67e56bb963d','2026-12-02T12:16:03.048883+00:00');
INSERT INTO "outputs" VALUES('feed.json','827bca71010d056380512ad07e32f89127b03526f84f660f7313a8f54f667ef2','2026-12-02T12:16:03.048883+00:00');
INSERT INTO "outputs" VALUES('entries/001_fixture.html','5e44d57030494de3ec30ef613252422729a116f685bed2b23564a0740b0725d3','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('entries/002_fixture.html','8e31ce43539ddf1d41af9875e7c3932fae49f541ae2acc6f8c5d4e9aedf82704','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('entries/003_fixture.html','5ace9a5ca36a8d7e0b7f6d66796f6fc5b285520ff2262eadf3b4795e761ae346','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('entries/004_fixture.html','7df81c130f9cfd7cb60deb178c1221814e003c31536767f3356032837b45b05f','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('entries/005_fixture.html','fb802c89de4e9a8ce2e8fda8fc3c8868115a07776286ae2f8ee4c7f7a2cc621c','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('entries/006_fixture.html','84d023dca855b187aec631f41d0079835fa5f0501ab94f32698f7016c179fa27','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('archive/page-1.html','fd14fd30e3aadfa6e236baf5faafd5df7b8681bc97cb6222ca844eab0643e52b','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('archive/atom-1.xml','1de000c63d979fd45715e5a11e64d4484baa938bcb668cc97fa86fd023a987ec','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('archive/rss-1.xml','16ec31a039a6250639fc6d31de5cfe0e162dde94b84accba1f110ee234d66e9a','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('archive/page-2.html','05d8ff605d5a841de0923999c4ca15072b6c2781e6d1dbe970c84030a1048fbe','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('archive/atom-2.xml','62b32d119dd14754a340049d6617fa30d63e95d5bfe2057dd3f3fb9d76b0f74b','2026-12-02T12:16:02.984523+00:00');
INSERT INTO "outputs" VALUES('archive/rss-2.xml','99004ddb22879facc6e1c20cbc1384d3e9bde88174db0d90f71983d23a12bd7a','2026-12-02T12:16:02.984523+00:00');
CREATE TABLE pings (
    hub TEXT NOT NULL,
    topic TEXT NOT NULL,
    since TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    last_error TEXT, held INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hub, topic)
);
INSERT INTO "pings" VALUES('https://hub.example/','https://example.org/atom.xml','2026-01-01T00:00:00+00:00',0,1767225600.0,NULL,0);
CREATE TABLE seeds (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    reason TEXT,                -- NULL when the seed became an entry
    first_seen TEXT NOT NULL,
    changed TEXT NOT NULL
);
INSERT INTO "seeds" VALUES('001_fixture.txt',65,1796213762778961489,'aa2b2983c011c605afd5d91b5fb7583e',NULL,'2026-12-02T12:16:02.942937+00:00','2026-12-02T12:16:02.942937+00:00');
INSERT INTO "seeds" VALUES('004_fixture.txt',65,1796213762779045109,'c2807d9b46ab45d4bb1eff6c2c139e72',NULL,'2026-12-02T12:16:02.942937+00:00','2026-12-02T12:16:02.942937+00:00');
INSERT INTO "seeds" VALUES('002_fixture.txt',65,1796213762778991077,'6ed2eb42eb7e0064bec9fb6c76c6869d',NULL,'2026-12-02T12:16:02.942937+00:00','2026-12-02T12:16:02.942937+00:00');
INSERT INTO "seeds" VALUES('005_fixture.txt',65,1796213762779069186,'7d6a51ca7ba1226e9f9dcf623ecaa63d',NULL,'2026-12-02T12:16:02.942937+00:00','2026-12-02T12:16:02.942937+00:00');
INSERT INTO "seeds" VALUES('007_empty.txt',0,1796213762779097065,'cae66941d9efbd404e4d88758ea67670','empty file','2026-12-02T12:16:02.942937+00:00','2026-12-02T12:16:02.942937+00:00');
INSERT INTO "seeds" VALUES('003_fixture.txt',65,1796213762779019271,'db9fd61cdf802736ea2ca5e1346830ff',NULL,'2026-12-02T12:16:02.942937+00:00','2026-12-02T12:16:02.942937+00:00');
INSERT INTO "seeds" VALUES('006_fixture.txt',65,1796213762779097065,'0ebac8a6765c41fbe6b896491263ce01',NULL,'2026-12-02T12:16:02.942937+00:00','2026-12-02T12:16:02.942937+00:00');
CREATE TABLE stale_pages (name TEXT PRIMARY KEY);
CREATE INDEX entries_order ON entries (pub_ts, name);
CREATE INDEX entries_page ON entries (archive_page, pub_ts, name);
CREATE TRIGGER entries_left_page AFTER DELETE ON entries
    WHEN old.archive_page IS NOT NULL
    BEGIN
        INSERT INTO dirty_pages SELECT old.archive_page
            WHERE NOT EXISTS (SELECT 1 FROM dirty_pages WHERE page = old.archive_page);
    END;
CREATE TRIGGER entries_changed_page AFTER UPDATE ON entries
    BEGIN
        INSERT INTO dirty_pages SELECT old.archive_page
            WHERE old.archive_page IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM dirty_pages WHERE page = old.archive_page);
        INSERT INTO dirty_pages SELECT new.archive_page
            WHERE new.archive_page IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM dirty_pages WHERE page = new.archive_page);
    END;
CREATE TRIGGER entries_page_new AFTER INSERT ON entries
    BEGIN
        INSERT INTO stale_pages SELECT new.name
            WHERE NOT EXISTS (SELECT 1 FROM stale_pages WHERE name = new.name);
    END;
CREATE TRIGGER entries_page_edited
    AFTER UPDATE OF title, summary, content_html, published, updated, language, slug ON entries
    BEGIN
        INSERT INTO stale_pages SELECT new.name
            WHERE NOT EXISTS (SELECT 1 FROM stale_pages WHERE name = new.name);
    END;
CREATE TRIGGER entries_page_gone AFTER DELETE ON entries
    BEGIN
        INSERT INTO gone_pages SELECT old.slug
            WHERE NOT EXISTS (SELECT 1 FROM gone_pages WHERE slug = old.slug);
    END;
CREATE TRIGGER entries_added AFTER INSERT ON entries
    BEGIN UPDATE counts SET n = n + 1 WHERE name = 'entries'; END;
CREATE TRIGGER entries_removed AFTER DELETE ON entries
    BEGIN UPDATE counts SET n = n - 1 WHERE name = 'entries'; END;
CREATE TRIGGER entries_neighbours_gone AFTER DELETE ON entries
    BEGIN
        INSERT INTO stale_pages SELECT n.name FROM (SELECT name FROM entries
            WHERE (pub_ts, name) < (old.pub_ts, old.name) ORDER BY pub_ts DESC, name DESC
            LIMIT 1) n WHERE NOT EXISTS (SELECT 1 FROM stale_pages s WHERE s.name = n.name);
        INSERT INTO stale_pages SELECT n.name FROM (SELECT name FROM entries
            WHERE (pub_ts, name) > (old.pub_ts, old.name) ORDER BY pub_ts, name
            LIMIT 1) n WHERE NOT EXISTS (SELECT 1 FROM stale_pages s WHERE s.name = n.name);
    END;
CREATE TRIGGER entries_neighbours_moved AFTER UPDATE OF pub_ts, name, title, slug, language
    ON entries
    WHEN old.pub_ts IS NOT new.pub_ts OR old.name IS NOT new.name OR old.title IS NOT new.title
        OR old.slug IS NOT new.slug OR old.language IS NOT new.language
    BEGIN
        INSERT INTO stale_pages SELECT n.name FROM (SELECT name FROM entries
            WHERE (pub_ts, name) < (old.pub_ts, old.name) AND id != new.id
            ORDER BY pub_ts DESC, name DESC LIMIT 1) n
            WHERE NOT EXISTS (SELECT 1 FROM stale_pages s WHERE s.name = n.name);
        INSERT INTO stale_pages SELECT n.name FROM (SELECT name FROM entries
            WHERE (pub_ts, name) > (old.pub_ts, old.name) AND id != new.id
            ORDER BY pub_ts, name LIMIT 1) n
            WHERE NOT EXISTS (SELECT 1 FROM stale_pages s WHERE s.name = n.name);
    END;
CREATE INDEX entries_language ON entries (language, pub_ts, name);
CREATE TRIGGER entries_language_new AFTER INSERT ON entries
    BEGIN
        UPDATE languages SET dirty = 1 WHERE code = new.language;
        INSERT INTO languages SELECT new.language, 1
            WHERE NOT EXISTS (SELECT 1 FROM languages WHERE code = new.language);
    END;
CREATE TRIGGER entries_language_gone AFTER DELETE ON entries
    BEGIN UPDATE languages SET dirty = 1 WHERE code = old.language; END;
CREATE TRIGGER entries_language_edited
    AFTER UPDATE OF id, title, summary, content_html, published, updated, language, slug, pub_ts,
        name ON entries
    BEGIN
        UPDATE languages SET dirty = 1 WHERE code IN (old.language, new.language);
        INSERT INTO languages SELECT new.language, 1
            WHERE NOT EXISTS (SELECT 1 FROM languages WHERE code = new.language);
    END;
COMMIT;
