# One decoded model for all backends (shared_preload_libraries = 'lfg'),
# served from a streaming hot standby too:
#  1. backends share one copy: a second backend attaches to the copy the
#     first loaded (lfg.cache), its private memory grows by far less than the
#     model, and its first call is timed against its second;
#  2. an activation is served by the next statement of an open session, on
#     the primary and, once replayed, on the standby;
#  3. a retrain on the primary while pgbench serves on the standby: no
#     failed transaction there; the retrain, and then an activation, put
#     the version they switch to into shared memory before they commit, and
#     the first call after the commit uses that copy; the standby's
#     lfg.preload_models worker loads the activated version after its replay;
#  4. a backend killed (SIGKILL) while it loads a model: the postmaster
#     reinitialises shared memory, no half-built model is visible, and
#     serving works.
# The figures are printed on one line starting with "# shared:".
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

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf',
	"shared_preload_libraries = 'lfg'\nlog_statement = none\nlfg.shared_cache_size = '512MB'\n"
	  . "restart_after_crash = on\n");
$ENV{OPENBLAS_NUM_THREADS} = 1;
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION lfg;
	CREATE TABLE r AS SELECT * FROM lfg_synthetic_ratings(3000, 2000, 150000, 9);
	INSERT INTO lfg.models (name, model)
	SELECT 'm', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 128, "epochs": 2, "seed": 1}') FROM r;
	INSERT INTO lfg.models (name, model)
	SELECT 'm', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 128, "epochs": 2, "seed": 2}') FROM r;
	SELECT lfg_activate('m', 1);
});
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
# the standby keeps m warm by itself (lfg.preload_models)
$standby->append_conf('postgresql.conf', "lfg.preload_models = 'postgres/m'\n");
$standby->start;
$primary->wait_for_catchup($standby);

my $model_bytes = $primary->safe_psql('postgres', "SELECT octet_length(model) FROM lfg.models WHERE name = 'm' AND version = 1");
my $top = "SELECT string_agg(item_id::text, ',') FROM lfg_recommend('m', '{\"1\": 5, \"2\": 4, \"3\": 1}', NULL::float8, NULL, NULL, 5)";
my $v1 = $primary->safe_psql('postgres', "SELECT lfg_predict('m', 1, 1, 1)");
my $v2 = $primary->safe_psql('postgres', "SELECT lfg_predict('m', 2, 1, 1)");
isnt($v1, $v2, 'the two versions predict differently');
my $served = "SELECT CASE lfg_predict('m', 1, 1)::text WHEN '$v1' THEN 1 WHEN '$v2' THEN 2 END";

# 1. one copy for all backends
my $first = $primary->background_psql('postgres');
$first->query_safe($top);
my $second = $primary->background_psql('postgres');
my $pid = $second->query_safe('SELECT pg_backend_pid()');
chomp $pid;
my $rss = sub {
	open(my $fh, '<', "/proc/$pid/status") or return -1;
	while (<$fh>) { return $1 * 1024 if /^RssAnon:\s+(\d+)/; }
	return -1;
};
my $rss0 = $rss->();
my $t0 = time;
$second->query_safe($top);
my $first_ms = (time - $t0) * 1000;
$t0 = time;
$second->query_safe($top);
my $second_ms = (time - $t0) * 1000;
my $growth = $rss->() - $rss0;
is($primary->safe_psql('postgres', q{SELECT count(*) || ':' || max(backends) FROM lfg.cache WHERE held_in = 'shared' AND model = 'm' AND version = 1}),
	'1:2', 'one shared copy of the active version, used by both backends');
cmp_ok($growth, '<', $model_bytes / 4,
	sprintf('the second backend\'s private memory grew by %.0f kB, under a quarter of the %.0f kB model', $growth / 1024, $model_bytes / 1024));
note sprintf('first call of a fresh backend %.2f ms, second %.2f ms', $first_ms, $second_ms);

# 2. an activation reaches the next statement of an open session, primary and standby
my $reader = $standby->background_psql('postgres');
is($reader->query_safe($served), '1', 'the standby serves version 1');
is($first->query_safe($served), '1', 'the primary serves version 1');
$primary->safe_psql('postgres', "SELECT lfg_activate('m', 2)");
is($first->query_safe($served), '2', 'the next statement on the primary serves version 2');
my $t_commit = time;
$primary->wait_for_catchup($standby, 'replay');
my $t_replayed = time;
my $switch_ms;
for (1 .. 200)
{
	if ($reader->query_safe($served) eq '2') { $switch_ms = (time - $t_replayed) * 1000; last; }
	sleep 0.01;
}
ok(defined $switch_ms, 'the open standby session serves version 2 once replayed');
note sprintf('standby: replayed %.1f ms after the commit, served %.1f ms after the replay',
	($t_replayed - $t_commit) * 1000, $switch_ms // -1);
is($standby->safe_psql('postgres', q{SELECT count(*) FROM lfg.cache WHERE held_in = 'shared' AND state = 'ready'}) > 0 ? 1 : 0,
	1, 'the standby shares its decoded copy too');
$first->quit;
$second->quit;
$reader->quit;

# 3. pgbench on the standby while the primary retrains and activates
my $script = $standby->basedir . '/recommend.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set u random(1, 2000)\nSELECT count(*) FROM lfg_recommend('m', jsonb_build_object(:u::text, 5), NULL::float8, NULL, NULL, 10);\n");
my ($bench_out, $bench_err) = ('', '');
my $bench = IPC::Run::start(
	[
		$standby->installed_command('pgbench'), '-n', '-M', 'prepared', '-c', '2', '-j', '2',
		'-T', '15', '-f', $script, '-h', $standby->host, '-p', $standby->port, 'postgres'
	],
	'<', \undef, '>', \$bench_out, '2>', \$bench_err);
sleep 2;
# the retrain shows its progress in lfg_progress() to another session
my $retrain = LfgTap::background_sql($primary,
	q{CALL lfg_retrain('m', 'r', '{"kind": "biassvd", "factors": 128, "epochs": 40, "seed": 3}', tolerance => 100)});
my $seen = '';
for (1 .. 3000)
{
	$seen = $primary->safe_psql('postgres',
		q{SELECT phase || ' ' || epoch || ' of ' || epochs || ', rows ' || rows_read || ', eta known ' || (eta_seconds >= 0)
		    || ', elapsed ' || (seconds > 0) FROM lfg_progress() WHERE epoch >= 1});
	last if $seen ne '' || !$retrain->{h}->pumpable;
	sleep 0.05;
}
like($seen, qr/^training \d+ of 40, rows \d+, eta known true, elapsed true$/, "lfg_progress shows the running fit from another session: $seen");
is(LfgTap::finish_background($retrain), 0, 'the retrain succeeded') or diag(${ $retrain->{err} });
is($primary->safe_psql('postgres', 'SELECT count(*) FROM lfg_progress()'), '0', 'lfg_progress is empty once it ended');
$bench->finish;
my ($processed) = $bench_out =~ /number of transactions actually processed: (\d+)/;
my ($failed) = $bench_out =~ /number of failed transactions: (\d+)/;
note "pgbench on the standby:\n$bench_out\n$bench_err";
is($bench->result(0), 0, 'pgbench on the standby exited with 0');
ok(($processed // 0) > 0, "pgbench served $processed transactions on the standby");
is($failed // 0, 0, 'no failed transaction on the standby during the retrain');
$primary->wait_for_catchup($standby, 'replay');
is($standby->safe_psql('postgres', "SELECT lfg_active_version('m')"), '3', 'the standby follows the retrain');

# a switch warms itself: the version a retrain or an activation switches to
# is in shared memory when they commit, and traffic finds it there (its
# loaded_at does not move)
my $shared_v = sub {
	my ($version) = @_;
	return $primary->safe_psql('postgres',
		"SELECT count(*) || ' ' || coalesce(max(loaded_at)::text, '') FROM lfg.cache "
		  . "WHERE held_in = 'shared' AND state = 'ready' AND model = 'm' AND version = $version");
};
my $after_retrain = $shared_v->(3);
like($after_retrain, qr/^1 \d/, 'the retrain left one shared copy of version 3, its committed row');
$primary->safe_psql('postgres', $top);
is($shared_v->(3), $after_retrain, 'the first call after the retrain used that copy');
$primary->safe_psql('postgres', q{
	INSERT INTO lfg.models (name, model)
	SELECT 'm', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 128, "epochs": 2, "seed": 4}') FROM r});
is($shared_v->(4), '0 ', 'a stored version is not loaded before it is needed');
$primary->safe_psql('postgres', "SELECT lfg_activate('m', 4)");
my $after_activate = $shared_v->(4);
like($after_activate, qr/^1 \d/, 'lfg_activate loaded version 4 into shared memory before it committed');
$primary->safe_psql('postgres', $top);
is($shared_v->(4), $after_activate, 'the first call after the activation used that copy');
# the standby's preload worker loads the version once the activation is replayed
$primary->wait_for_catchup($standby, 'replay');
my $t_replay = time;
my $standby_warm;
for (1 .. 300)
{
	if ($standby->safe_psql('postgres',
			q{SELECT count(*) FROM lfg.cache WHERE held_in = 'shared' AND state = 'ready' AND model = 'm' AND version = 4}) eq '1')
	{
		$standby_warm = time - $t_replay;
		last;
	}
	sleep 0.1;
}
ok(defined $standby_warm, 'the standby\'s preload worker loaded version 4 after the replay, with no call there');
note sprintf('standby preload: version 4 ready %.1f s after the replay', $standby_warm // -1);

# 4. SIGKILL of a backend while it loads a model
$primary->safe_psql('postgres', q{
	CREATE TABLE big AS SELECT * FROM lfg_synthetic_ratings(20000, 20000, 400000, 4);
	INSERT INTO lfg.models (name, model)
	SELECT 'big', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 256, "epochs": 1}') FROM big;
});
my $killed = 0;
my $poller = $primary->background_psql('postgres');
for my $try (1 .. 10)
{
	# a new row version of the bytes: a load the shared copy cannot answer
	$primary->safe_psql('postgres', "UPDATE lfg.models SET model = model WHERE name = 'big'");
	my $loader = LfgTap::background_sql($primary, "SELECT lfg_load('big')");
	my $lpid = '';
	for (1 .. 3000)
	{
		$lpid = $poller->query_safe(
			q{SELECT pid FROM pg_stat_activity WHERE query = 'SELECT lfg_load(''big'')' AND state = 'active'
			   AND EXISTS (SELECT 1 FROM lfg.cache WHERE model = 'big' AND state = 'loading')});
		last if $lpid ne '' || !$loader->{h}->pumpable;
	}
	if ($lpid ne '')
	{
		kill 'KILL', $lpid;
		$killed = 1;
		LfgTap::finish_background($loader);
		last;
	}
	LfgTap::finish_background($loader);
}
eval { $poller->{run}->kill_kill; };
ok($killed, 'a backend was killed while it loaded a model');
$primary->poll_query_until('postgres', 'SELECT true') or die 'the primary did not come back';
is($primary->safe_psql('postgres', q{SELECT count(*) FROM lfg.cache WHERE state = 'loading'}), '0',
	'no half-built model is visible after the restart');
is($primary->safe_psql('postgres', q{SELECT lfg_load('big') > 0 AND (SELECT count(*) FROM lfg_recommend('big', '{"1": 5}', NULL::float8, NULL, NULL, 5)) = 5}),
	't', 'the model loads and serves after the restart');

diag(sprintf('shared: first call %.2f ms, second %.2f ms (%.0fx); private memory +%.0f kB for a %.0f kB model; '
	  . 'standby served the activation %.1f ms after replay; pgbench on the standby %d transactions, %d failed; killed mid-load: %s',
	$first_ms, $second_ms, $first_ms / ($second_ms || 1), $growth / 1024, $model_bytes / 1024,
	$switch_ms // -1, $processed // 0, $failed // 0, $killed ? 'yes' : 'no'));

$standby->stop;
$primary->stop;
done_testing();
