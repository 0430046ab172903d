# Races between serving and changes to lfg.models, with real concurrent
# sessions (doc/serving.md, "Caching"):
#  1. new connections calling lfg_predict while another session commits
#     activations: no error (the relation lookups survive invalidations);
#  2. a statement that spans another session's commit and takes a new lock
#     mid-statement (a cache miss on a second model; detoasting a TOASTed
#     jsonb argument): every later statement serves the new version;
#  3. inside an open READ COMMITTED transaction, the statement after another
#     session's commit serves the new version;
#  4. a role without rights, or hidden by row-level security, gets nothing
#     from the cache a superuser filled; the caller's search_path never
#     chooses lfg's operators;
#  5. lfg_drop_old during a retrain skips the version the retrain compares
#     against, and the retrain succeeds;
#  6. a cancel stops lfg_synthetic_ratings within 1 s.
# The other session of 2 and 3 is a dblink connection, so that its commit
# falls exactly where the statement under test is. The figures are printed
# on one line starting with "# races:".
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

use LfgTap;

my $tries = 100;
my $new_connections = 1000;

my $node = LfgTap::start_node('races');
$node->safe_psql('postgres', q{
	CREATE EXTENSION dblink;
	CREATE TABLE r AS SELECT * FROM lfg_synthetic_ratings(300, 200, 9000, 3);
	INSERT INTO lfg.models (name, model)
	SELECT 'm', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 8, "seed": 1}') FROM r;
	INSERT INTO lfg.models (name, model)
	SELECT 'm', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 8, "seed": 2}') FROM r;
	INSERT INTO lfg.models (name, model)
	SELECT 'm2', lfg_fit(user_id, item_id, rating, '{"kind": "svd", "factors": 4, "seed": 3}') FROM r;
	SELECT lfg_activate('m', 1);
	-- the versions differ on the pair every check uses
	SELECT CASE WHEN lfg_predict('m', 1, 1, 1) = lfg_predict('m', 2, 1, 1)
	            THEN pg_catalog.pg_terminate_backend(pg_backend_pid()) END;
	-- one small and one TOASTed (out of line) ratings argument
	CREATE TABLE pending (id int PRIMARY KEY, ratings jsonb);
	ALTER TABLE pending ALTER COLUMN ratings SET STORAGE EXTERNAL;
	INSERT INTO pending VALUES (1, '{"1": 5}'), (2, '{"2": 4}'), (4, '{"3": 3}'),
	  (3, (SELECT jsonb_object_agg(i::text, 1 + i % 5) FROM generate_series(1, 200) i));
});
is($node->safe_psql('postgres',
	"SELECT pg_column_size(ratings) > 1000 AND pg_relation_size(reltoastrelid) > 0 FROM pending, pg_class "
	. "WHERE id = 3 AND oid = 'pending'::regclass"), 't', 'one ratings argument is TOASTed');

# The version a statement serves, told by the prediction for (1, 1)
my $served_is_active =
  "SELECT lfg_predict('m', 1, 1) = lfg_predict('m', lfg_active_version('m'), 1, 1)";

# 1. new connections (pgbench -C) while another session commits activations
$node->safe_psql('postgres', 'CREATE TABLE stop_flipping (x int)');
my $flipper = LfgTap::background_sql($node, q{
	DO $$
	DECLARE n int := 0;
	BEGIN
	  WHILE NOT EXISTS (SELECT 1 FROM stop_flipping) LOOP
	    PERFORM lfg_activate('m', 1 + n % 2);
	    n := n + 1;
	    COMMIT;
	    PERFORM pg_sleep(0.01);
	  END LOOP;
	  RAISE NOTICE 'flips: %', n;
	END $$;
});
my $script = $node->basedir . '/predict.sql';
PostgreSQL::Test::Utils::append_to_file($script, "SELECT lfg_predict('m', 1, 1);\n");
my ($bench_out, $bench_err) = ('', '');
my $bench = IPC::Run::run(
	[
		$node->installed_command('pgbench'), '-n', '-C', '-c', '2', '-j', '2',
		'-t', $new_connections / 2, '-f', $script,
		'-h', $node->host, '-p', $node->port, 'postgres'
	],
	'<', \undef, '>', \$bench_out, '2>', \$bench_err);
$node->safe_psql('postgres', 'INSERT INTO stop_flipping VALUES (1)');
is(LfgTap::finish_background($flipper), 0, 'the activations committed without error');
my ($flips) = ${ $flipper->{err} } =~ /flips: (\d+)/;
my ($processed) = $bench_out =~ /number of transactions actually processed: (\d+)/;
my $errors = () = $bench_err =~ /ERROR/g;
note "pgbench -C stdout:\n$bench_out\nstderr:\n$bench_err";
ok($bench, 'pgbench with a new connection per call exited with 0');
is($processed, $new_connections, "$new_connections calls from new connections all served");
is($errors, 0, 'no call failed');
cmp_ok($flips // 0, '>=', 10, "activations committed meanwhile ($flips)");

# 2 and 3: one psql session runs every try; dblink 'other' commits mid-statement
sub run_tries
{
	my ($name, $make_try) = @_;
	my $sql = "SELECT dblink_connect('other', 'dbname=postgres port=" . $node->port
	  . " host=" . $node->host . "');\n";
	for my $t (1 .. $tries)
	{
		my $to = 1 + $t % 2;
		$sql .= $make_try->($t, $to);
		$sql .= "SELECT CASE WHEN ($served_is_active) THEN 'fresh' ELSE 'stale' END;\nCOMMIT;\n";
	}
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	is($ret, 0, "$name: the tries ran") or diag($err);
	my @checks = grep { /^(fresh|stale)$/ } split /\n/, $out;
	my $stale = grep { $_ eq 'stale' } @checks;
	is(scalar(@checks), $tries, "$name: $tries tries checked");
	is($stale, 0, "$name: no later statement served the old version ($stale of $tries)");
	return $stale;
}

my $activate = sub {
	my ($to) = @_;
	return "(SELECT v FROM dblink('other', 'SELECT lfg_activate(''m'', $to)') AS t(v int))";
};

# a statement that hits the cache for m, then (after the other session's
# commit) misses on m2, then serves m again; the cache was emptied by a
# change to m2 first so that m is loaded (and locked) in an earlier statement
my $stale_miss = run_tries(
	'second model missed mid-statement',
	sub {
		my ($t, $to) = @_;
		return "SELECT dblink_exec('other', 'UPDATE lfg.models SET metrics = metrics WHERE name = ''m2''') IS NOT NULL;\n"
		  . "SELECT lfg_predict('m', 1, 1) IS NOT NULL;\n"
		  . "SELECT lfg_predict('m', 1, 1) IS NOT NULL, " . $activate->($to)
		  . " IS NOT NULL, lfg_predict('m2', 1, 1) IS NOT NULL, lfg_predict('m', 1, 2) IS NOT NULL;\n";
	});

# the documented batch: pending ratings served row by row; the other session
# commits before the second row, the third row's argument is TOASTed
my $stale_toast = run_tries(
	'TOASTed argument detoasted mid-statement',
	sub {
		my ($t, $to) = @_;
		return "SELECT lfg_predict('m', 1, 1) IS NOT NULL;\n"
		  . "SELECT count(*) > 0 FROM (VALUES (1), (2), (3), (4)) AS g(i), "
		  . "LATERAL (SELECT CASE WHEN g.i = 2 THEN " . $activate->($to) . " END) AS d, "
		  . "LATERAL lfg_recommend('m', (SELECT p.ratings FROM pending p WHERE p.id = g.i), NULL::float8, NULL, NULL, 3) AS rec;\n";
	});

# an open READ COMMITTED transaction: the statement after the commit
my $stale_open = run_tries(
	'open READ COMMITTED transaction',
	sub {
		my ($t, $to) = @_;
		return "BEGIN;\nSELECT lfg_predict('m', 1, 1) IS NOT NULL;\n"
		  . "SELECT " . $activate->($to) . " IS NOT NULL;\n";
	});

# 4. roles, row-level security and search_path against a filled cache
my ($ret, $out, $err) = $node->psql('postgres', q{
	CREATE ROLE nopriv;
	CREATE ROLE hidden;
	GRANT USAGE ON SCHEMA lfg TO nopriv, hidden;
	GRANT SELECT ON lfg.models, lfg.active TO hidden;
	ALTER TABLE lfg.models ENABLE ROW LEVEL SECURITY;
	CREATE POLICY only_m2 ON lfg.models FOR SELECT TO hidden USING (name = 'm2');
	SELECT lfg_predict('m', 1, 1) IS NOT NULL AS superuser_served;
	SET ROLE nopriv;
	SELECT lfg_predict('m', 1, 1);
});
like($err, qr/permission denied for table models/, 'SET ROLE to a role without SELECT: refused');
($ret, $out, $err) = $node->psql('postgres', q{
	SELECT lfg_predict('m', 1, 1) IS NOT NULL;
	SET SESSION AUTHORIZATION hidden;
	SELECT lfg_predict('m2', 1, 1) IS NOT NULL AS visible;
	SELECT lfg_predict('m', 1, 1);
});
like($err, qr/model "m" does not exist/, 'a model hidden by row-level security: not served from the cache');
like($out, qr/^t$/m, 'the visible model is served');
($ret, $out, $err) = $node->psql('postgres', q{
	ALTER TABLE lfg.models DISABLE ROW LEVEL SECURITY;
	CREATE SCHEMA evil;
	CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS
	  $$BEGIN RAISE WARNING 'evil operator ran as %', current_user; RETURN $1 OPERATOR(pg_catalog.=) $2; END$$;
	CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
	UPDATE lfg.models SET metrics = metrics WHERE name = 'm2';
	SET search_path = evil, pg_catalog, public;
	SELECT lfg_predict('m', 1, 1) IS NOT NULL;
	SELECT count(*) FROM lfg_recommend('m2', '{"1": 5}', NULL::float8, NULL, NULL, 3);
});
is($ret, 0, 'served with an attacker\'s operator first on the search_path');
unlike($err, qr/evil operator ran/, 'the attacker\'s operator never ran');

# 5. lfg_drop_old while a retrain runs: the retrain compares against the
# active version 2; meanwhile version 3 is activated and lfg_drop_old keeps
# one version, which would delete version 2 under the retrain
$node->safe_psql('postgres', q{
	INSERT INTO lfg.models (name, model)
	SELECT 'm', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 8, "seed": 5}') FROM r;
	SELECT lfg_activate('m', 2);
	CREATE TABLE big AS SELECT * FROM lfg_synthetic_ratings(3000, 1000, 300000, 5);
});
my $retrain = LfgTap::background_sql($node,
	q{CALL lfg_retrain('m', 'big', '{"kind": "biassvd", "factors": 32, "epochs": 200, "seed": 4}', tolerance => 100)});
my $pid = LfgTap::wait_for_retrain($node, 60);
ok(defined $pid, 'the retrain is running');
# the retrain has locked the version it compares against (a row lock takes
# a transaction id) before it trains
$node->poll_query_until('postgres', qq{
	SELECT count(*) > 0 FROM pg_locks WHERE pid = $pid AND locktype = 'transactionid'})
  or diag('the retrain took no transaction id');
my $t0 = time;
my $dropped = $node->safe_psql('postgres', "SELECT lfg_activate('m', 3); SELECT lfg_drop_old('m', 1)");
my $drop_s = time - $t0;
my $still_running = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND state = 'active'");
is(LfgTap::finish_background($retrain), 0, 'the retrain succeeded despite lfg_drop_old')
  or diag(${ $retrain->{err} });
is($still_running, '1', 'lfg_drop_old returned while the retrain was still running');
cmp_ok($drop_s, '<', 5, sprintf('lfg_drop_old did not wait for the retrain (%.2f s)', $drop_s));
like($dropped, qr/^1$/m, 'lfg_drop_old deleted version 1 only');
is($node->safe_psql('postgres',
	"SELECT previous_version || ':' || (previous_rmse IS NOT NULL) FROM lfg.retrain_log WHERE name = 'm' ORDER BY id DESC LIMIT 1"),
	'2:true', 'the retrain compared against version 2, which lfg_drop_old skipped');
is($node->safe_psql('postgres', "SELECT lfg_drop_old('m', 1)"), '1',
	'once the retrain ended, version 2 can be dropped');

# 6. cancel of a huge lfg_synthetic_ratings
my $synth = LfgTap::background_sql($node,
	'SELECT count(*) FROM lfg_synthetic_ratings(10000, 1000000, 4000000000, 1)');
my $spid;
$node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM lfg_synthetic%' AND state = 'active'});
sleep 1.5;
$spid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM lfg_synthetic%' AND state = 'active'");
# cancel and wait from one server-side loop: the time is the server's
my $cancel_ms = $node->safe_psql('postgres', qq{
	DO \$\$
	DECLARE t0 timestamptz := clock_timestamp();
	BEGIN
	  PERFORM pg_cancel_backend($spid);
	  LOOP
	    PERFORM pg_stat_clear_snapshot();
	    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $spid AND state = 'active');
	    EXIT WHEN clock_timestamp() > t0 + interval '30 s';
	    PERFORM pg_sleep(0.005);
	  END LOOP;
	  PERFORM set_config('lfg_test.cancel_ms', (extract(epoch FROM clock_timestamp() - t0) * 1000)::text, false);
	END \$\$;
	SELECT current_setting('lfg_test.cancel_ms');});
my $cancel_s = $cancel_ms / 1000;
LfgTap::finish_background($synth);
like(${ $synth->{err} }, qr/canceling statement due to user request/, 'lfg_synthetic_ratings was cancelled');
cmp_ok($cancel_s, '<', 1, sprintf('cancelled within 1 s (%.3f s)', $cancel_s));

note sprintf('races: %d calls from new connections, %d errors, %d activations meanwhile; '
	  . 'stale after a mid-statement miss %d/%d, after a TOASTed argument %d/%d, in an open transaction %d/%d; '
	  . 'lfg_drop_old during a retrain %.2f s; cancel of lfg_synthetic_ratings %.3f s',
	$processed // 0, $errors, $flips // 0, $stale_miss, $tries, $stale_toast, $tries, $stale_open, $tries,
	$drop_s, $cancel_s);
diag(sprintf('races: %d new-connection calls, %d errors; stale %d/%d, %d/%d, %d/%d; drop_old %.2f s; cancel %.3f s',
	$processed // 0, $errors, $stale_miss, $tries, $stale_toast, $tries, $stale_open, $tries, $drop_s, $cancel_s));

$node->stop;
done_testing();
