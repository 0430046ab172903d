-- The ratings the operations tests train on (psql variables): :users users
-- rating :items items (:n ratings, seed :seed), demographics for every user,
-- the ratings of users 1 .. :first in `ratings` (the others arrive later,
-- from all_ratings), and training_ratings, the view the models train on.
CREATE TABLE all_ratings AS SELECT * FROM lfg_synthetic_ratings(:users, :items, :n, :seed);
CREATE TABLE users AS
  SELECT u AS user_id, 15 + (u * 7) % 50 AS age,
         CASE WHEN u % 3 = 0 THEN 'F' ELSE 'M' END AS gender,
         (ARRAY['artist', 'doctor', 'engineer', 'student'])[1 + u % 4] AS job
  FROM generate_series(1, :users) u;
CREATE TABLE ratings AS SELECT * FROM all_ratings WHERE user_id <= :first;
CREATE VIEW training_ratings AS
  SELECT r.user_id, r.item_id, r.rating, u.age, u.gender, u.job
  FROM ratings r JOIN users u USING (user_id);
