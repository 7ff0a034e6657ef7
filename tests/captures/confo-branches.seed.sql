-- Two registered subs and, for each of 20 rounds k, a pub for each branch
-- of the decision tree that starts from an existing pub (hashes 1000k + 100
-- to 1000k + 106).
INSERT INTO sub (sub_id, email) VALUES (1, 'ravi@example.com'), (2, 'asha@example.com');
SELECT setval('sub_sub_id_seq', 2);
INSERT INTO pub (hash, creator)
SELECT k * 1000 + b.hash, b.creator
  FROM generate_series(0, 19) k,
       (VALUES (100, 'ravi@example.com'), (101, 'asha@example.com'), (102, NULL), (103, ''),
               (104, 'asha@example.com'), (105, 'gone@example.com'), (106, NULL)) AS b (hash, creator)
 ORDER BY k, b.hash;
