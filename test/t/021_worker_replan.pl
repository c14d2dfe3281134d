# The worker is one long session and PostgreSQL keeps the plans a session
# makes: started on a database whose invoice tables are empty, its
# foreign-key checks would scan invoices sequentially for every invoice
# line, for as long as the session lives (no autovacuum here to invalidate
# the plans).  The worker drops its cached plans each time its work has
# doubled, from 1,000 rows on, so after the first thousand invoices the
# checks use the primary key.  Measured here as the number of sequential
# scans of subbilling.invoices during one run of 5,000 subscriptions in
# batches of 100, against the number of invoice lines it writes (one
# foreign-key check each): without the replanning they are about equal.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 5000;
my $node = PostgreSQL::Test::Cluster->new('replan');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'subbilling'
subbilling.database = 'postgres'
subbilling.worker_enabled = off
subbilling.naptime = 3600
subbilling.batch_size = 100
autovacuum = off
timezone = 'UTC'
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql('CREATE EXTENSION subbilling CASCADE');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', "n=$n", '-d', $node->connstr('postgres'),
	  '-f', 'bench/billing_gen.sql' ],
	"$n subscriptions generated (bench/billing_gen.sql)");
sql('VACUUM ANALYZE');
my $before = sql("SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'subbilling.invoices'::regclass");

sql("ALTER SYSTEM SET subbilling.worker_enabled = on; SELECT pg_reload_conf();");
ok($node->poll_query_until('postgres', 'SELECT subbilling.wake_worker()'), 'the worker is woken');
ok($node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM subbilling.worker_runs WHERE status = 'ok' AND invoices > 0"),
	'the worker finishes a run that bills');
is(sql("SELECT count(*) FROM subbilling.subscriptions WHERE next_bill_on <= current_date"), '0',
	'every due subscription is billed');

# the worker's statistics reach the shared counters when it next reports
# them (within a second of a commit); wait for the last batch's
$node->poll_query_until('postgres',
	"SELECT n_tup_ins = (SELECT count(*) FROM subbilling.invoice_lines)
       FROM pg_stat_user_tables WHERE relid = 'subbilling.invoice_lines'::regclass");
my $lines = sql('SELECT count(*) FROM subbilling.invoice_lines');
my $scans = sql("SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'subbilling.invoices'::regclass") - $before;
ok($lines > 5 * $n, "the run wrote $lines invoice lines");
cmp_ok($scans, '<', $lines / 2,
	"invoices was scanned sequentially $scans times for $lines lines: the worker replanned as the table grew");

$node->stop;
done_testing();
