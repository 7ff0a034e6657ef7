INSERT INTO pub (pub_id, hash) SELECT g, 1000 + g FROM generate_series(1, 8) g;
SELECT setval('pub_pub_id_seq', 8);
