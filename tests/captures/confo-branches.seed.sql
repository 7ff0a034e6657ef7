-- Two registered subs and a pub for each branch of the decision tree that
-- starts from an existing pub (hashes 100-106).
INSERT INTO sub (sub_id, email) VALUES (1, 'ravi@example.com'), (2, 'asha@example.com');
SELECT setval('sub_sub_id_seq', 2);
INSERT INTO pub (pub_id, hash, creator) VALUES
  (1, 100, 'ravi@example.com'), (2, 101, 'asha@example.com'), (3, 102, NULL), (4, 103, ''),
  (5, 104, 'asha@example.com'), (6, 105, 'gone@example.com'), (7, 106, NULL);
SELECT setval('pub_pub_id_seq', 7);
