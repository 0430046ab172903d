# A backend that loaded lfg runs one thread, whatever the server's
# environment: the server starts without OPENBLAS_NUM_THREADS (nor the
# variables OpenBLAS falls back to), so a threaded OpenBLAS would start
# ncpu - 1 threads of its own when lfg.so is loaded (issue 17). Checked in a
# backend that loaded lfg on first use (two threads on a 2-core machine
# before the fix), after a fit and a recommendation, and with lfg in
# shared_preload_libraries: the postmaster and a backend (OpenBLAS's fork
# handler already ended a pool there). Thread counts are the entries of
# /proc/PID/task (Linux).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'thread counts need /proc/self/task (Linux)' unless -d '/proc/self/task';

delete $ENV{$_} for qw(OPENBLAS_NUM_THREADS GOTO_NUM_THREADS OMP_NUM_THREADS);

# the threads of the backend running the query, and whether it has lfg.so
# and OpenBLAS mapped and OPENBLAS_NUM_THREADS in its environment
my $PROBE = q{
	SELECT (SELECT count(*) FROM pg_ls_dir('/proc/self/task')) || ' '
	    || (pg_read_file('/proc/self/maps') LIKE '%/lfg.so%') || ' '
	    || (pg_read_file('/proc/self/maps') LIKE '%libopenblas%') || ' '
	    || (position('OPENBLAS_NUM_THREADS'::bytea IN pg_read_binary_file('/proc/self/environ')) > 0)};

# A fit and a recommendation, so that BLAS has run (level 3 and level 2)
my $WORK = q{
	CREATE TABLE r AS SELECT * FROM lfg_synthetic_ratings(300, 200, 20000, 3);
	INSERT INTO lfg.models (name, model)
	  SELECT 'm', lfg_fit(user_id, item_id, rating, '{"epochs": 3, "seed": 1}') FROM r;
	SELECT count(*) FROM lfg_recommend('m', '{"1": 5, "2": 3, "3": 4}', NULL::float8, NULL, NULL, 10);
};

# Threads of a process, from /proc/PID/task
sub task_count
{
	my ($pid) = @_;
	opendir(my $d, "/proc/$pid/task") or die "cannot read /proc/$pid/task: $!";
	my $n = grep { !/^\./ } readdir($d);
	closedir($d);
	return $n;
}

# lfg loaded by the first call in a backend
my $node = PostgreSQL::Test::Cluster->new('threads');
$node->init;
$node->append_conf('postgresql.conf', 'max_parallel_workers_per_gather = 0');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION lfg');
is($node->safe_psql('postgres', "SELECT 1 FROM lfg_build_info(); $PROBE"),
	"1\n1 true true false",
	'a backend that loaded lfg runs one thread without OPENBLAS_NUM_THREADS');
is($node->safe_psql('postgres', "$WORK $PROBE"), "10\n1 true true false",
	'one thread after a fit and a recommendation');
$node->stop;

# lfg preloaded: the postmaster loads OpenBLAS once, backends inherit it
my $pre = PostgreSQL::Test::Cluster->new('preload');
$pre->init;
$pre->append_conf('postgresql.conf', "shared_preload_libraries = 'lfg'");
$pre->start;
$pre->safe_psql('postgres', 'CREATE EXTENSION lfg');
my $postmaster = $pre->safe_psql('postgres',
	"SELECT split_part(pg_read_file('postmaster.pid'), E'\\n', 1)");
like($postmaster, qr/^\d+$/, "postmaster pid $postmaster");
is(task_count($postmaster), 1, 'the postmaster that preloaded lfg runs one thread');
is($pre->safe_psql('postgres', "$WORK $PROBE"), "10\n1 true true false",
	'a backend of a server that preloads lfg runs one thread');
$pre->stop;

done_testing();
