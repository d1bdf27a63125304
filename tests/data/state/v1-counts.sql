-- A state file written by feeder at commit 1ddf144 (2026-11-27),
-- made by tests/data/state/make.py.
PRAGMA user_version=1;
BEGIN TRANSACTION;
CREATE TABLE counts (
    name TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
INSERT INTO "counts" VALUES('entries',6);
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
);
INSERT INTO "entries" VALUES('tag:example.org,2025:001_fixture','001_fixture.txt','001_fixture','001_fixture','Article number 1','Article number 1. A short body for the fixture.','<p>Article number 1. A short body for the fixture.</p>','2025-01-01T00:00:00+00:00','2025-01-01T00:00:00+00:00','en',1735689600.0);
INSERT INTO "entries" VALUES('tag:example.org,2025:004_fixture','004_fixture.txt','004_fixture','004_fixture','Article number 4','Article number 4. A short body for the fixture.','<p>Article number 4. A short body for the fixture.</p>','2025-01-04T00:00:00+00:00','2025-01-04T00:00:00+00:00','en',1735948800.0);
INSERT INTO "entries" VALUES('tag:example.org,2025:002_fixture','002_fixture.txt','002_fixture','002_fixture','Article number 2','Article number 2. A short body for the fixture.','<p>Article number 2. A short body for the fixture.</p>','2025-01-02T00:00:00+00:00','2025-01-02T00:00:00+00:00','en',1735776000.0);
INSERT INTO "entries" VALUES('tag:example.org,2025:005_fixture','005_fixture.txt','005_fixture','005_fixture','Article number 5','Article number 5. A short body for the fixture.','<p>Article number 5. A short body for the fixture.</p>','2025-01-05T00:00:00+00:00','2025-01-05T00:00:00+00:00','en',1736035200.0);
INSERT INTO "entries" VALUES('tag:example.org,2025:003_fixture','003_fixture.txt','003_fixture','003_fixture','Article number 3','Article number 3. A short body for the fixture.','<p>Article number 3. A short body for the fixture.</p>','2025-01-03T00:00:00+00:00','2025-01-03T00:00:00+00:00','en',1735862400.0);
INSERT INTO "entries" VALUES('tag:example.org,2025:006_fixture','006_fixture.txt','006_fixture','006_fixture','Article number 6','Article number 6. A short body for the fixture.','<p>Article number 6. A short body for the fixture.</p>','2025-01-06T00:00:00+00:00','2025-01-06T00:00:00+00:00','en',1736121600.0);
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
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO "meta" VALUES('archive','{"archived": 4, "pages": 2}');
INSERT INTO "meta" VALUES('render_key','"3b8458149b48bfa2afe428c2c8605c4bdf2db580"');
INSERT INTO "meta" VALUES('fixture','"made by tests/data/state/make.py"');
CREATE TABLE pings (
    hub TEXT NOT NULL,
    topic TEXT NOT NULL,
    since TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    last_error TEXT,
    PRIMARY KEY (hub, topic)
);
INSERT INTO "pings" VALUES('https://hub.example/','https://example.org/atom.xml','2026-01-01T00:00:00+00:00',0,1767225600.0,NULL);
CREATE TABLE seeds (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    reason TEXT,                -- NULL when the seed became an entry
    first_seen TEXT NOT NULL,
    changed TEXT NOT NULL
);
INSERT INTO "seeds" VALUES('001_fixture.txt',65,1796171514623787815,'aa2b2983c011c605afd5d91b5fb7583e',NULL,'2026-12-02T00:31:54.800633+00:00','2026-12-02T00:31:54.800633+00:00');
INSERT INTO "seeds" VALUES('004_fixture.txt',65,1796171514624867565,'c2807d9b46ab45d4bb1eff6c2c139e72',NULL,'2026-12-02T00:31:54.800633+00:00','2026-12-02T00:31:54.800633+00:00');
INSERT INTO "seeds" VALUES('002_fixture.txt',65,1796171514624150122,'6ed2eb42eb7e0064bec9fb6c76c6869d',NULL,'2026-12-02T00:31:54.800633+00:00','2026-12-02T00:31:54.800633+00:00');
INSERT INTO "seeds" VALUES('005_fixture.txt',65,1796171514625227819,'7d6a51ca7ba1226e9f9dcf623ecaa63d',NULL,'2026-12-02T00:31:54.800633+00:00','2026-12-02T00:31:54.800633+00:00');
INSERT INTO "seeds" VALUES('007_empty.txt',0,1796171514625591128,'cae66941d9efbd404e4d88758ea67670','empty file','2026-12-02T00:31:54.800633+00:00','2026-12-02T00:31:54.800633+00:00');
INSERT INTO "seeds" VALUES('003_fixture.txt',65,1796171514624506811,'db9fd61cdf802736ea2ca5e1346830ff',NULL,'2026-12-02T00:31:54.800633+00:00','2026-12-02T00:31:54.800633+00:00');
INSERT INTO "seeds" VALUES('006_fixture.txt',65,1796171514625591128,'0ebac8a6765c41fbe6b896491263ce01',NULL,'2026-12-02T00:31:54.800633+00:00','2026-12-02T00:31:54.800633+00:00');
CREATE INDEX entries_order ON entries (pub_ts, name);
CREATE TRIGGER entries_added AFTER INSERT ON entries
    BEGIN UPDATE counts SET n = n + 1 WHERE name = 'entries'; END;
CREATE TRIGGER entries_removed AFTER DELETE ON entries
    BEGIN UPDATE counts SET n = n - 1 WHERE name = 'entries'; END;
COMMIT;
