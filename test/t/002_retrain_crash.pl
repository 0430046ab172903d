# A retrain that never commits leaves the served model as it was: model m's
# version 1 is active and serving; a retrain of m is ended by
# pg_terminate_backend() in the middle of training, then another one by an
# immediate stop of the server. After each, version 1 is still the only
# version, still active, byte for byte the same, and serves the same
# recommendations; after the restart a retrain completes as version 2.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

use LfgTap;

my $node = LfgTap::start_node('crash');
LfgTap::create_ratings($node);

my ($ret, $out, $err) = $node->psql('postgres',
	"CALL lfg_retrain('m', 'rl', '$LfgTap::OPTIONS_V1')");
is($ret, 0, 'version 1 trained by lfg_retrain');
is($node->safe_psql('postgres', "SELECT lfg_active_version('m')"), '1', 'version 1 is active');

# what version 1 is and serves
my $STATE_SQL = q{
	SELECT (SELECT string_agg(version::text, ',' ORDER BY version) FROM lfg.models WHERE name = 'm'),
	       lfg_active_version('m'),
	       (SELECT version FROM lfg.active WHERE name = 'm'),
	       (SELECT md5(model) FROM lfg.models WHERE name = 'm' AND version = 1),
	       (SELECT count(*) FROM lfg.retrain_log WHERE name = 'm')};
my $state = $node->safe_psql('postgres', $STATE_SQL);
my $top = $node->safe_psql('postgres', $LfgTap::TOP_SQL);
isnt($top, '', "version 1 serves: $top");
like($state, qr/^1\|1\|1\|[0-9a-f]{32}\|1$/, 'one version, active, one retrain logged');

# a session that serves version 1 from its cache through both interruptions
my $reader = $node->background_psql('postgres');
is($reader->query_safe($LfgTap::TOP_SQL), $top, 'a long-lived session serves version 1');

# Check after an interrupted retrain that nothing changed and version 1
# serves the same rows to a new session and to the long-lived one (unless
# the server restarted)
sub check_intact
{
	my ($what, $reader) = @_;
	is($node->safe_psql('postgres', $STATE_SQL), $state,
		"$what: version 1 is still the only version, active, unchanged; no retrain logged");
	is($node->safe_psql('postgres', q{
		SELECT i.kind || ' ' || i.n_users || ' ' || i.n_items
		  FROM lfg.models AS m, lfg_model_info(m.model) AS i
		 WHERE m.name = 'm' AND m.version = lfg_active_version('m')}),
		'lfg 2000 1500', "$what: lfg_model_info decodes the active version's bytes");
	is($node->safe_psql('postgres', $LfgTap::TOP_SQL), $top,
		"$what: a new session gets the same recommendations");
	is($reader->query_safe($LfgTap::TOP_SQL), $top,
		"$what: the long-lived session gets the same recommendations")
	  if $reader;
	return;
}

# Start a retrain of m in the background and return it and its backend's
# pid, once it has been training for a second
sub start_retrain
{
	my $bg = LfgTap::background_sql($node,
		"CALL lfg_retrain('m', 'rl', '$LfgTap::OPTIONS_V2', tolerance => 1.0)");
	my $pid = LfgTap::wait_for_retrain($node);
	ok(defined $pid, 'the retrain is running');
	sleep 1;
	is($node->safe_psql('postgres',
			"SELECT state FROM pg_stat_activity WHERE pid = " . ($pid // 0)),
		'active', 'and still running a second later');
	return ($bg, $pid // 0);
}

# 1. pg_terminate_backend() in the middle of training
my ($bg, $pid) = start_retrain();
my $t0 = time;
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"), 't',
	'pg_terminate_backend() of the retrain');
isnt(LfgTap::finish_background($bg), 0, 'the terminated CALL fails');
my $terminate_s = time - $t0;
like(${ $bg->{err} }, qr/terminating connection due to administrator command/,
	'because its backend was terminated')
  or diag(${ $bg->{err} });
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'the backend is gone');
check_intact('after pg_terminate_backend', $reader);

# 2. an immediate stop in the middle of training, then a restart
($bg, $pid) = start_retrain();
$reader->quit;
$node->stop('immediate');
isnt(LfgTap::finish_background($bg), 0, 'the CALL interrupted by the immediate stop fails');
$node->start;
ok($node->log_contains(qr/database system was interrupted|not properly shut down/),
	'the restart ran crash recovery');
check_intact('after an immediate stop and a restart');

# nothing was left held: a retrain now completes, as version 2
($ret, $out, $err) = $node->psql('postgres',
	"CALL lfg_retrain('m', 'rl', '$LfgTap::OPTIONS_V2', tolerance => 1.0)");
is($ret, 0, 'after the restart a retrain completes') or diag($err);
like($err, qr/lfg_retrain "m": activated version 2/, 'as version 2, activated');
is($node->safe_psql('postgres',
		"SELECT string_agg(version::text, ',' ORDER BY version) FROM lfg.models WHERE name = 'm'"),
	'1,2', 'versions 1 and 2 are stored');
isnt($node->safe_psql('postgres', $LfgTap::TOP_SQL), $top, 'and version 2 is served');

diag(sprintf('crash: a terminated retrain ended %.2f s after pg_terminate_backend(); '
	  . 'version 1 intact and serving after it and after an immediate stop', $terminate_s));

$node->stop;
done_testing();
