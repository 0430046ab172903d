-- Set-returning functions under a SCROLL cursor whose result spills past
-- work_mem: the tuplestore must be built with random access (issue 17)
CREATE TABLE sc_data AS SELECT * FROM lfg_synthetic_ratings(200, 4000, 40000, 17);
INSERT INTO lfg.models (name, model)
  SELECT 'scroll', lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2, "seed": 1}')
  FROM sc_data;
CREATE TABLE sc_user AS SELECT '{"1": 5, "2": 1, "3": 4}'::jsonb AS ratings;
-- the whole catalogue but the 3 rated items: thousands of rows, far beyond 64kB
CREATE TABLE sc_forward AS
  SELECT t.ord, t.item_id FROM sc_user u,
         lfg_recommend('scroll', u.ratings, NULL::float8, NULL, NULL, 100000)
           WITH ORDINALITY AS t(item_id, score, ord);
SELECT count(*) = (SELECT i.n_items - 3 FROM lfg.models m, lfg_model_info(m.model) i
                    WHERE m.name = 'scroll') AS whole_catalogue,
       count(*) > 3000 AS spills
  FROM sc_forward;

-- a SCROLL cursor in SQL: to the end, then backwards
BEGIN;
SET LOCAL work_mem = '64kB';
DECLARE c SCROLL CURSOR FOR
  SELECT t.ord, t.item_id FROM lfg_recommend('scroll', '{"1": 5, "2": 1, "3": 4}',
                                             NULL::float8, NULL, NULL, 100000)
                                 WITH ORDINALITY AS t(item_id, score, ord);
MOVE FORWARD ALL IN c;
MOVE BACKWARD 2 IN c;
FETCH BACKWARD 1 FROM c \gset b_
SELECT :b_ord = (SELECT max(ord) - 2 FROM sc_forward) AS third_last,
       :b_item_id = (SELECT item_id FROM sc_forward WHERE ord = :b_ord) AS same_item;
FETCH ABSOLUTE 2 FROM c \gset a_
SELECT :a_ord = 2 AS second, :a_item_id = (SELECT item_id FROM sc_forward WHERE ord = 2) AS same_item;
FETCH PRIOR FROM c \gset p_
SELECT :p_ord = 1 AS first, :p_item_id = (SELECT item_id FROM sc_forward WHERE ord = 1) AS same_item;
COMMIT;

-- every row, read backwards from the end through a PL/pgSQL SCROLL cursor,
-- equals the forward result, for each form of lfg_recommend
CREATE FUNCTION pg_temp.backwards(q text) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
  c refcursor;
  r record;
  items bigint[] := '{}';
BEGIN
  SET LOCAL work_mem = '64kB';
  OPEN c SCROLL FOR EXECUTE q;
  MOVE LAST FROM c;
  FETCH RELATIVE 0 FROM c INTO r;
  WHILE FOUND LOOP
    items := r.item_id || items;
    FETCH PRIOR FROM c INTO r;
  END LOOP;
  CLOSE c;
  RETURN items;
END $$;
SELECT pg_temp.backwards($$SELECT * FROM lfg_recommend('scroll', '{"1": 5, "2": 1, "3": 4}',
         NULL::float8, NULL, NULL, 100000)$$) = array_agg(item_id ORDER BY ord) AS jsonb_form,
       pg_temp.backwards($$SELECT * FROM lfg_recommend_arrays('scroll', '{1, 2, 3}', '{5, 1, 4}',
         NULL, NULL, NULL, 100000)$$) = array_agg(item_id ORDER BY ord) AS array_form
  FROM sc_forward;
SET lfg.model = 'scroll';
SELECT pg_temp.backwards($$SELECT * FROM lfg_recommend(NULL, '{"1": 5, "2": 1, "3": 4}',
         NULL::float8, NULL, NULL, 100000)$$) = array_agg(item_id ORDER BY ord) AS default_model_form
  FROM sc_forward;
RESET lfg.model;

-- without SCROLL, a spilled result still reads forward
BEGIN;
SET LOCAL work_mem = '64kB';
DECLARE f CURSOR FOR
  SELECT t.item_id FROM lfg_recommend('scroll', '{"1": 5, "2": 1, "3": 4}',
                                      NULL::float8, NULL, NULL, 100000) AS t;
MOVE FORWARD 1000 IN f;
FETCH 1 FROM f \gset f_
SELECT :f_item_id = (SELECT item_id FROM sc_forward WHERE ord = 1001) AS row_1001;
COMMIT;

DELETE FROM lfg.models WHERE name = 'scroll';
DROP TABLE sc_data, sc_user, sc_forward;
