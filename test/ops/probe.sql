-- The answers the operations tests record before and compare after (dump and
-- restore, upgrade): new users served by lfg_recommend, lfg_predict over
-- items 1..120 and lfg_user_factors, and lfg_predict of known users by the
-- active version and by versions 1 and 2 of the model named by :'versioned'.
-- Models 'gen' and 'bias' must exist; run with psql -v versioned=NAME.
CREATE TABLE probe_users (id int PRIMARY KEY, ratings jsonb, age float8, gender text, job text);
INSERT INTO probe_users VALUES
  (1, '{"3": 5, "17": 1, "42": 4, "99": 2}', 30, 'F', 'doctor'),
  (2, '{"5": 2, "6": 2, "7": 5, "8": 4, "9": 1, "110": 5}', 55, 'M', 'engineer'),
  (3, '{"1": 4}', 19, 'M', 'student'),
  (4, '{}', 40, NULL, NULL);
CREATE VIEW answers AS
  SELECT m AS model, 'recommend' AS fn, p.id, r.item_id, r.score, NULL::real[] AS factors
    FROM unnest(ARRAY['gen', 'bias']) m, probe_users p,
         lfg_recommend(m, p.ratings, p.age, p.gender, p.job, 20) r
  UNION ALL
  SELECT m, 'predict_new_user', p.id, s.i, s.score, NULL
    FROM unnest(ARRAY['gen', 'bias']) m, probe_users p,
         unnest(lfg_predict(m, p.ratings, p.age, p.gender, p.job,
                            (SELECT array_agg(g::bigint) FROM generate_series(1, 120) g)))
           WITH ORDINALITY AS s(score, i)
  UNION ALL
  SELECT m, 'user_factors', p.id, NULL, NULL, lfg_user_factors(m, p.ratings, p.age, p.gender, p.job)
    FROM unnest(ARRAY['gen', 'bias']) m, probe_users p
  UNION ALL
  SELECT m, 'predict', u, i, lfg_predict(m, u, i), NULL
    FROM unnest(ARRAY['gen', 'bias']) m, generate_series(1, 300, 7) u, generate_series(1, 120, 5) i
  UNION ALL
  SELECT :'versioned', 'predict_v' || v, u, i, lfg_predict(:'versioned', v, u, i), NULL
    FROM generate_series(1, 2) v, generate_series(1, 300, 7) u, generate_series(1, 120, 5) i;
CREATE TABLE recorded AS SELECT * FROM answers;
