INSERT INTO pub (pub_id, hash) VALUES (1, 1001), (2, 1002);
SELECT setval('pub_pub_id_seq', 2);
