-- Meters 1-8 of the fleet; meter 9 is not one of them.
INSERT INTO pub (pub_id, hash) SELECT g, 1000 + g FROM generate_series(1, 8) g;
SELECT setval('pub_pub_id_seq', 8);
