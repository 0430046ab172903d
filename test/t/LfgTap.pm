# Helpers shared by the lfg TAP tests (test/t/*.pl): a node with lfg
# installed, the ratings the retrains read, the recommendation the tests
# compare, and psql sessions running in the background.
package LfgTap;

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

# LFG options of the first version and of a retrain that differs from it
# (another seed: other factors, so other scores), with 5 epochs of the
# ranking head (new_user's 120 would only make them longer); 200,000 ratings and 20
# epochs take about 4 s on an idle 2-core machine, 6 to 9 s under pgbench
our $OPTIONS_V1 = '{"kind": "lfg", "preset": "new_user", "epochs": 20, "rank_epochs": 5, "seed": 1}';
our $OPTIONS_V2 = '{"kind": "lfg", "preset": "new_user", "epochs": 20, "rank_epochs": 5, "seed": 2}';

# A new user's top 10 from model m, as one string "item:score,..." in the
# order served (scores rounded to 4 decimals)
our $TOP_SQL =
    "SELECT string_agg(t.item_id || ':' || round(t.score::numeric, 4), ',' ORDER BY t.ord) "
  . "FROM lfg_recommend('m', '{\"1\": 5, \"2\": 4, \"10\": 3, \"50\": 5, \"77\": 2}', 30, 'F', 'job1', 10) "
  . "WITH ORDINALITY AS t(item_id, score, ord)";

# Start a node with one BLAS thread per backend (as scripts/cluster.sh) and
# lfg created; extra lines go to postgresql.conf
sub start_node
{
	my ($name, $extra_conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	# Cluster.pm logs every statement: far too much under pgbench
	$node->append_conf('postgresql.conf',
		"log_statement = none\nsynchronous_commit = off\nfull_page_writes = off\n"
		  . ($extra_conf // ''));
	$ENV{OPENBLAS_NUM_THREADS} = 1;
	if (!defined $ENV{OPENBLAS_CORETYPE}
		&& system("grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo") == 0)
	{
		# OpenBLAS 0.3.21 falls back to its slowest kernels on recent CPUs
		$ENV{OPENBLAS_CORETYPE} = 'Haswell';
	}
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION lfg');
	return $node;
}

# Ratings for the retrains: table r (synthetic) and view rl with the
# demographics LFG needs
sub create_ratings
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{
		CREATE TABLE r AS SELECT * FROM lfg_synthetic_ratings(2000, 1500, 200000, 7);
		CREATE VIEW rl AS
		  SELECT user_id, item_id, rating, 20 + user_id % 40 AS age,
		         CASE WHEN user_id % 2 = 0 THEN 'F' ELSE 'M' END AS gender,
		         'job' || user_id % 7 AS job
		    FROM r;
	});
	return;
}

# Run sql with psql in the background; returns a hash with the IPC::Run
# handle (h) and references to its stdout and stderr
sub background_sql
{
	my ($node, $sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return { h => $h, out => \$out, err => \$err };
}

# Wait for a background psql to end; returns its exit code
sub finish_background
{
	my ($bg) = @_;
	$bg->{h}->finish;
	return $bg->{h}->result(0);
}

# The pid of the backend running CALL lfg_retrain, polled until it appears
# (undef after timeout seconds)
sub wait_for_retrain
{
	my ($node, $timeout) = @_;
	my $until = time + ($timeout // 60);
	while (time < $until)
	{
		my $pid = $node->safe_psql('postgres', q{
			SELECT pid FROM pg_stat_activity
			 WHERE state = 'active' AND query LIKE 'CALL lfg_retrain(%'
			   AND pid <> pg_backend_pid() LIMIT 1});
		return $pid if $pid ne '';
		sleep 0.05;
	}
	return undef;
}

1;
