# lfg.preload_models: a background worker per database keeps the active
# version of the listed models in shared memory, with no call needed: at
# startup, after a version switch (within a second or two) and after a crash
# restart; an unknown model is reported once, not every round.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

use LfgTap;

my $node = LfgTap::start_node('preload',
	"shared_preload_libraries = 'lfg'\nlfg.preload_models = 'postgres/m, postgres/nosuch'\nrestart_after_crash = on\n");
$node->safe_psql('postgres', q{
	CREATE TABLE r AS SELECT * FROM lfg_synthetic_ratings(500, 300, 20000, 5);
	INSERT INTO lfg.models (name, model)
	SELECT 'm', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "epochs": 2, "seed": 1}') FROM r;
});

# the copies of m in shared memory: "version:state" entries
my $shared = sub {
	return $node->safe_psql('postgres',
		q{SELECT coalesce(string_agg(version || ':' || state, ',' ORDER BY version), '') FROM lfg.cache
		   WHERE held_in = 'shared' AND model = 'm'});
};
my $wait_for = sub {
	my ($want) = @_;
	my $t0 = time;
	for (1 .. 300)
	{
		return time - $t0 if $shared->() eq $want;
		sleep 0.1;
	}
	return undef;
};

# 1. at startup
$node->restart;
my $s = $wait_for->('1:ready');
ok(defined $s, 'version 1 is in shared memory after a restart, with no call') and
  note sprintf('loaded %.1f s after the restart', $s);
my $log = slurp_file($node->logfile);
like($log, qr/lfg.preload_models: version 1 of model "m" is in shared memory/, 'the worker logs what it loaded');
sleep 2.5;
$log = slurp_file($node->logfile);
my @warnings = $log =~ /(WARNING:  lfg.preload_models: model "nosuch" is not loaded: model "nosuch" does not exist)/g;
is(scalar(@warnings), 1, 'an unknown model is reported once');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'lfg preload'}),
	'1', 'one worker for the database');

# 2. a new version (the newest is served: no lfg.active row) is loaded, and
# the old one, unused, is freed
$node->safe_psql('postgres', q{
	INSERT INTO lfg.models (name, model)
	SELECT 'm', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "epochs": 2, "seed": 2}') FROM r;
});
$s = $wait_for->('2:ready');
ok(defined $s, 'version 2 replaced version 1 in shared memory, with no call') and
  note sprintf('within %.1f s of the commit', $s);

# 3. after a crash restart
my $victim = $node->background_psql('postgres');
my $pid = $victim->query_safe('SELECT pg_backend_pid()');
chomp $pid;
kill 'KILL', $pid;
eval { $victim->quit };
my $up;
for (1 .. 300)
{
	$up = eval { $node->safe_psql('postgres', 'SELECT 1') };
	last if defined $up && $up eq '1';
	sleep 0.1;
}
is($up, '1', 'the server is back after a backend was killed');
$s = $wait_for->('2:ready');
ok(defined $s, 'version 2 is in shared memory again after the crash restart, with no call') and
  note sprintf('within %.1f s of the reconnection', $s);
is($node->safe_psql('postgres', q{SELECT count(*) FROM lfg_recommend('m', '{"1": 5}', NULL::float8, NULL, NULL, 5)}),
	'5', 'and serves');

$node->stop;
done_testing();
