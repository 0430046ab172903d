# Retraining while recommendations are served: pgbench (2 clients, 30 s,
# prepared) calls lfg_recommend on model m while CALL lfg_retrain trains and
# activates its version 2. Every transaction records which version it
# served, so the test checks that no transaction failed, that the retrain
# ran alongside the readers without waiting on a lock, that each client
# switched to version 2 right after the commit and never went back, and
# that a second concurrent lfg_retrain of m fails at once with 55P03.
# The figures are printed on one line starting with "# concurrency:".
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

my $clients = 2;
my $seconds = 30;

# the commit timestamp tells when the retrain's activation committed
my $node = LfgTap::start_node('concurrency', "track_commit_timestamp = on\n");
LfgTap::create_ratings($node);

# version 1, active and serving
my ($ret, $out, $err) = $node->psql('postgres',
	"CALL lfg_retrain('m', 'rl', '$LfgTap::OPTIONS_V1')");
is($ret, 0, 'version 1 trained by lfg_retrain');
like($err, qr/lfg_retrain "m": activated version 1/, 'version 1 activated (NOTICE)');
is($node->safe_psql('postgres', "SELECT lfg_active_version('m')"), '1', 'version 1 is active');
my $top1 = $node->safe_psql('postgres', $LfgTap::TOP_SQL);
isnt($top1, '', "version 1 recommends: $top1");

# every pgbench transaction records its client, its start (now()), its end
# and the md5 of the top 10 it served
$node->safe_psql('postgres', q{
	CREATE UNLOGGED TABLE served (client int NOT NULL, started timestamptz NOT NULL,
	                              finished timestamptz NOT NULL, top text NOT NULL)});
my $top_expr = $LfgTap::TOP_SQL;
$top_expr =~ s/^SELECT string_agg/SELECT :client_id, now(), clock_timestamp(), md5(string_agg/;
$top_expr =~ s/ FROM lfg_recommend/) FROM lfg_recommend/;
my $script = $node->basedir . '/recommend.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"INSERT INTO served (client, started, finished, top) $top_expr;\n");

my ($bench_out, $bench_err) = ('', '');
my $bench = IPC::Run::start(
	[
		$node->installed_command('pgbench'), '-n', '-M', 'prepared',
		'-c', $clients, '-j', $clients, '-T', $seconds, '-P', '5', '-f', $script,
		'-h', $node->host, '-p', $node->port, 'postgres'
	],
	'<', \undef, '>', \$bench_out, '2>', \$bench_err,
	IPC::Run::timeout($seconds + $PostgreSQL::Test::Utils::timeout_default));

# once both clients serve, retrain m into version 2 (another seed; the gate's
# tolerance is wide so that version 2 is activated)
ok( $node->poll_query_until('postgres',
		"SELECT count(DISTINCT client) = $clients FROM served"),
	'pgbench clients are serving');
sleep 2;
my $retrain = LfgTap::background_sql($node,
	"CALL lfg_retrain('m', 'rl', '$LfgTap::OPTIONS_V2', tolerance => 1.0)");
my $pid = LfgTap::wait_for_retrain($node);
ok(defined $pid, 'the retrain is running');
$pid //= 0;

# a second retrain of m while the first runs: refused at once with 55P03
my $t0 = time;
($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nCALL lfg_retrain('m', 'rl', NULL)");
my $second_ms = (time - $t0) * 1000;
isnt($ret, 0, 'a second concurrent lfg_retrain of m fails');
like($err, qr/ERROR:  55P03: another lfg_retrain of model "m" is running/,
	'with SQLSTATE 55P03 (lock_not_available)');
cmp_ok($second_ms, '<', 5000, 'at once (no wait for the first)');
is($node->safe_psql('postgres', "SELECT state FROM pg_stat_activity WHERE pid = $pid"),
	'active', 'while the first retrain still runs');

# sample the retrain's wait events until it ends: readers must not block it
my %waits;
my $samples = 0;
while ($retrain->{h}->pumpable)
{
	my $w = $node->safe_psql('postgres',
		"SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity WHERE pid = $pid AND state = 'active'");
	if ($w ne '')
	{
		$waits{$w}++;
		$samples++;
	}
	$retrain->{h}->pump_nb;
	sleep 0.2;
}
is(LfgTap::finish_background($retrain), 0, 'the concurrent retrain succeeded')
  or diag(${ $retrain->{err} });
like(${ $retrain->{err} }, qr/lfg_retrain "m": activated version 2/, 'version 2 activated (NOTICE)');
my @lock_waits = grep { /^Lock:/ } keys %waits;
is(scalar(@lock_waits), 0, "the retrain never waited on a lock ($samples samples)")
  or diag(explain \%waits);
note 'retrain wait events: ', join(', ', map { "$_ x$waits{$_}" } sort keys %waits);

$bench->finish;
my $bench_rc = $bench->result(0);
note "pgbench stdout:\n$bench_out\npgbench stderr:\n$bench_err";
is($bench_rc, 0, 'pgbench exited with 0') or diag($bench_err);
my ($processed) = $bench_out =~ /number of transactions actually processed: (\d+)/;
my ($failed) = $bench_out =~ /number of failed transactions: (\d+)/;
my ($tps) = $bench_out =~ /tps = ([\d.]+)/;
ok(defined $processed && $processed > 0, 'pgbench processed transactions');
is($failed, 0, 'zero failed pgbench transactions');
$processed //= 0;
$tps //= 0;

# the new version, as a new session serves it
is($node->safe_psql('postgres', "SELECT lfg_active_version('m')"), '2', 'version 2 is active');
my $top2 = $node->safe_psql('postgres', $LfgTap::TOP_SQL);
isnt($top2, $top1, "version 2 recommends otherwise: $top2");

# classify every transaction: 1, 2, or 0 for neither version's top 10
$node->safe_psql('postgres', qq{
	CREATE TABLE classified AS
	SELECT client, started, finished,
	       CASE top WHEN md5('$top1') THEN 1 WHEN md5('$top2') THEN 2 ELSE 0 END AS version
	  FROM served});
my ($rows, $unknown) = split /\|/, $node->safe_psql('postgres',
	'SELECT count(*), count(*) FILTER (WHERE version = 0) FROM classified');
cmp_ok($rows, '>=', $processed, 'every processed transaction recorded what it served');
is($unknown, 0, "every transaction served version 1's or version 2's top 10");

# when the activation committed, and what was served around it
my $commit = $node->safe_psql('postgres',
	"SELECT pg_xact_commit_timestamp(xmin) FROM lfg.active WHERE name = 'm'");
isnt($commit, '', "the activation's commit time is known: $commit");
my ($retrain_s, $during, $after_s, $commit_at_s) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT round(extract(epoch FROM '$commit'::timestamptz - l.started_at)::numeric, 2),
	       (SELECT count(*) FROM classified c WHERE c.started >= l.started_at AND c.finished <= '$commit'),
	       round(extract(epoch FROM (SELECT max(finished) FROM classified) - '$commit')::numeric, 2),
	       round(extract(epoch FROM '$commit' - (SELECT min(started) FROM classified))::numeric, 2)
	  FROM lfg.retrain_log l WHERE l.name = 'm' AND l.new_version = 2});
cmp_ok($during, '>', 0, "recommendations were served during the retrain ($during)");
cmp_ok($after_s, '>=', 1, "the retrain committed while pgbench ran ($after_s s before its end)");

# per client: the first version 2 answer, the last version 1 answer, and
# no version 1 answer after a version 2 one
my $per_client = $node->safe_psql('postgres', qq{
	WITH f AS (SELECT client, min(started) FILTER (WHERE version = 2) AS first_v2
	             FROM classified GROUP BY client)
	SELECT c.client,
	       round((extract(epoch FROM min(c.finished) FILTER (WHERE c.version = 2) - '$commit') * 1000)::numeric, 3),
	       round((extract(epoch FROM max(c.finished) FILTER (WHERE c.version = 1) - '$commit') * 1000)::numeric, 3),
	       count(*) FILTER (WHERE c.version = 1 AND c.started > '$commit'),
	       count(*) FILTER (WHERE c.version = 1 AND c.started > f.first_v2),
	       count(*) FILTER (WHERE c.version = 1), count(*) FILTER (WHERE c.version = 2)
	  FROM classified c JOIN f USING (client)
	 GROUP BY c.client ORDER BY c.client});
my @lines = split /\n/, $per_client;
is(scalar(@lines), $clients, 'every client recorded transactions');
my ($max_first_ms, $max_last_ms, $stale) = (-1e9, -1e9, 0);
my @client_figures;
for my $line (@lines)
{
	my ($client, $first_ms, $last_ms, $stale_c, $back, $n1, $n2) = split /\|/, $line;
	cmp_ok($n1, '>', 0, "client $client served version 1 ($n1 times)");
	cmp_ok($n2, '>', 0, "client $client served version 2 ($n2 times)");
	is($back, 0, "client $client never went back to version 1 after serving version 2");
	my $first_txt = $first_ms eq '' ? 'never' : "$first_ms ms";
	my $last_txt = $last_ms eq '' ? 'none' : "$last_ms ms";
	$first_ms = 1e9 if $first_ms eq '';
	$last_ms = -1e9 if $last_ms eq '';
	# a working invalidation switches at the next transaction (well under a
	# millisecond here); a second allows for a loaded machine
	cmp_ok($first_ms, '<', 1000,
		"client $client served version 2 within 1 s of the commit ($first_txt)");
	cmp_ok($last_ms, '<', 1000,
		"client $client served no version 1 later than 1 s after the commit ($last_txt)");
	$max_first_ms = $first_ms if $first_ms > $max_first_ms;
	$max_last_ms = $last_ms if $last_ms > $max_last_ms;
	$stale += $stale_c;
	push @client_figures, "client $client: first v2 answer $first_txt, last v1 answer $last_txt";
}

diag(sprintf(
		'concurrency: pgbench %d clients %d s (prepared): %d transactions (%.0f tps), %d failed; '
		  . '%d recommendations served during the %.2f s retrain (committed %.2f s into the run, %.2f s before its end); '
		  . 'every client served version 2 within %s of the commit, the last version 1 answer ended at commit %s (%s); '
		  . '%d transactions started after the commit served version 1; '
		  . 'a second concurrent lfg_retrain failed with 55P03 in %.0f ms; retrain lock waits: %d of %d samples',
		$clients, $seconds, $processed, $tps, $failed // -1, $during, $retrain_s, $commit_at_s, $after_s,
		$max_first_ms >= 1e9 ? 'never' : sprintf('%.3f ms', $max_first_ms),
		sprintf('%+.3f ms', $max_last_ms), join('; ', @client_figures), $stale, $second_ms,
		scalar(@lock_waits), $samples));

$node->stop;
done_testing();
