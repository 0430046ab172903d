-- Ranking metrics: binary relevance, log2 discount (doc/reference.md)
-- hits at positions 2 and 4 of 5; 3 relevant items
SELECT lfg_precision_at_k('{7,3,9,1,4}', '{1,3,8}', 5) = 0.4 AS p_at_5,
       abs(lfg_recall_at_k('{7,3,9,1,4}', '{1,3,8}', 5) - 2.0 / 3) < 1e-12 AS r_at_5,
       abs(lfg_ndcg_at_k('{7,3,9,1,4}', '{1,3,8}', 5)
           - (1 / log(2, 3) + 1 / log(2, 5)) / (1 + 1 / log(2, 3) + 1 / log(2, 4))) < 1e-12 AS ndcg_at_5;
-- k cuts the list; the ideal DCG has min(k, |relevant|) terms
SELECT lfg_precision_at_k('{7,3,9,1,4}', '{1,3,8}', 2) = 0.5 AS p_at_2,
       abs(lfg_ndcg_at_k('{7,3,9,1,4}', '{1,3,8}', 2) - (1 / log(2, 3)) / (1 + 1 / log(2, 3))) < 1e-12 AS ndcg_at_2,
       abs(lfg_ndcg_at_k('{3}', '{1,3,8}', 1) - 1) < 1e-12 AS ndcg_at_1_perfect;
-- k beyond the list: the missing positions are misses
SELECT lfg_precision_at_k('{1,3}', '{1,3,8}', 10) = 0.2 AS p_short_list,
       abs(lfg_recall_at_k('{1,3}', '{1,3,8}', 10) - 2.0 / 3) < 1e-12 AS r_short_list;
-- a repeated recommended item counts once, at its first position
SELECT lfg_precision_at_k('{3,3,3}', '{3}', 3) = 1.0 / 3 AS p_repeats,
       lfg_recall_at_k('{3,3,1}', '{1,3}', 3) = 1 AS r_repeats,
       abs(lfg_ndcg_at_k('{3,3,1}', '{1,3}', 3) - (1 + 1 / log(2, 4)) / (1 + 1 / log(2, 3))) < 1e-12 AS ndcg_repeats;
-- a repeated relevant item is one item
SELECT lfg_recall_at_k('{1}', '{1,1,2}', 5) = 0.5 AS r_relevant_repeats;
-- empty arrays
SELECT lfg_precision_at_k('{}', '{1,2}', 10) AS p_empty_list,
       lfg_recall_at_k('{}', '{1,2}', 10) AS r_empty_list,
       lfg_ndcg_at_k('{}', '{1,2}', 10) AS ndcg_empty_list;
SELECT lfg_precision_at_k('{1,2}', '{}', 10) AS p_nothing_relevant,
       lfg_recall_at_k('{1,2}', '{}', 10) AS r_nothing_relevant,
       lfg_ndcg_at_k('{1,2}', '{}', 10) AS ndcg_nothing_relevant;
-- NULL arguments give NULL (the functions are strict)
SELECT lfg_precision_at_k(NULL, '{1}', 10) IS NULL AS null_list,
       lfg_recall_at_k('{1}', NULL, 10) IS NULL AS null_relevant,
       lfg_ndcg_at_k('{1}', '{1}', NULL) IS NULL AS null_k;
-- errors: k < 1, NULL elements, more than one dimension
SELECT lfg_precision_at_k('{1}', '{1}', 0);
SELECT lfg_recall_at_k('{1}', '{1}', -3);
SELECT lfg_ndcg_at_k('{1,NULL}', '{1}', 10);
SELECT lfg_precision_at_k('{1}', '{NULL}', 10);
SELECT lfg_recall_at_k('{{1,2},{3,4}}', '{1}', 10);
-- volatility and parallel safety
SELECT proname, provolatile, proparallel, proisstrict FROM pg_proc
 WHERE proname IN ('lfg_precision_at_k', 'lfg_recall_at_k', 'lfg_ndcg_at_k') ORDER BY proname;
-- averaged over users in a query, as test/bench/ranking.sh does
SELECT round(avg(lfg_precision_at_k(rec, rel, 2))::numeric, 4) AS mean_p_at_2
  FROM (VALUES ('{1,2}'::bigint[], '{1}'::bigint[]), ('{3,4}', '{4,5}'), ('{6,7}', '{8}')) AS t(rec, rel);
