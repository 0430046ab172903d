# Models are found by name through lfg.models' primary key index, which is
# ordered by the database's collation. In a database whose default
# collation is not C (ICU "en" here: case and accents order differently
# from bytes), every one of 3,000 names of mixed case and accents (an index
# of many pages) must be found, by the per-backend cache and by the shared
# one (shared_preload_libraries), by name and by version, and the
# newest/active version rules must hold. A search with the C collation
# finds few of them.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib 'test/t';
use LfgTap;

my $SETUP = q{
	CREATE EXTENSION lfg;
	CREATE TABLE r AS SELECT * FROM lfg_synthetic_ratings(50, 40, 1000, 1);
	INSERT INTO lfg.models (name, model)
	  SELECT 'base', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "epochs": 3}') FROM r;
	INSERT INTO lfg.models (name, model)
	  SELECT n, (SELECT model FROM lfg.models WHERE name = 'base')
	    FROM (SELECT (ARRAY['a', 'B', 'é', 'Z', '_', 'ä', 'c', 'D'])[1 + g % 8]
	                 || (ARRAY['x', 'Y', 'ö', '1'])[1 + (g / 8) % 4] || g AS n
	            FROM generate_series(1, 3000) g) s;
	-- a second and third version of some names, the second one active for some
	INSERT INTO lfg.models (name, model)
	  SELECT name, model FROM lfg.models WHERE name LIKE 'B%' OR name LIKE 'é%';
	INSERT INTO lfg.models (name, model)
	  SELECT name, model FROM lfg.models WHERE version = 2;
	SELECT count(lfg_activate(name, 2)) FROM lfg.models WHERE name LIKE 'é%' AND version = 2;
};

for my $mode ('shared', 'per-backend')
{
	my $node = LfgTap::start_node("collation_$mode",
		$mode eq 'shared' ? "shared_preload_libraries = 'lfg'" : undef);
	my $icu = $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_collation WHERE collprovider = 'i' AND collname = 'en-x-icu'});
	if (!$icu)
	{
		$node->stop;
		plan skip_all => 'this server has no ICU collations';
	}
	$node->safe_psql('postgres',
		q{CREATE DATABASE icu LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C' ENCODING 'UTF8' TEMPLATE template0});
	$node->safe_psql('icu', $SETUP);
	cmp_ok($node->safe_psql('icu', q{SELECT pg_relation_size('lfg.models_pkey') / 8192}),
		'>', 3, "$mode: the primary key index has several pages");

	my $missing = $node->safe_psql('icu', q{
		SELECT count(*) FROM (SELECT DISTINCT name FROM lfg.models) m
		 WHERE NOT EXISTS (SELECT 1 FROM lfg_recommend(m.name, '{"1": 5}', NULL, NULL, NULL, 3))});
	is($missing, 0, "$mode: every name found by lfg_recommend");

	# the version served by name: the active one, else the newest
	my $versions = $node->safe_psql('icu', q{
		SELECT left(name, 1) || ':' || string_agg(DISTINCT lfg_load(name)::text, ',')
		  FROM (SELECT DISTINCT name FROM lfg.models WHERE name <> 'base') m
		 GROUP BY left(name, 1) ORDER BY left(name, 1) COLLATE "C"});
	is($versions, join("\n", qw(B:3 D:1 Z:1 _:1 a:1 c:1 ä:1 é:2)),
		"$mode: by name, the active version, else the newest, of every name");
	is($node->safe_psql('icu', q{
		SELECT count(*) FROM lfg.models m WHERE lfg_load(m.name, m.version) IS DISTINCT FROM m.version}),
		0, "$mode: every (name, version) found");
	$node->stop;
}

done_testing();
