# The worker killed with SIGKILL in the middle of a batch: the postmaster
# restarts the cluster, the batch in progress is rolled back, the interrupted
# run is marked failed, and every due item is billed exactly once.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'subbilling'
subbilling.naptime = 1
subbilling.batch_size = 2
restart_after_crash = on
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# A fake engine: each batch moves up to batch_size items from due to billed.
# The second batch stops in pg_sleep while the marker row exists.
sql(q{
CREATE EXTENSION subbilling CASCADE;
CREATE TABLE public.due (item int PRIMARY KEY);
CREATE TABLE public.billed (item int, txid bigint);
CREATE TABLE public.stall (on_batch int);
INSERT INTO public.stall VALUES (2);
CREATE SEQUENCE public.batch_no;
BEGIN;
CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n int;
BEGIN
    WITH d AS (DELETE FROM public.due
                WHERE item IN (SELECT item FROM public.due ORDER BY item LIMIT run_billing_batch.batch_size)
               RETURNING item)
    INSERT INTO public.billed SELECT item, txid_current() FROM d;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF EXISTS (SELECT FROM public.stall WHERE on_batch = nextval('public.batch_no')) THEN
        PERFORM pg_sleep(300);
    END IF;
    RETURN QUERY SELECT n, 0, EXISTS (SELECT FROM public.due);
END
$$;
INSERT INTO public.due SELECT generate_series(1, 5);
COMMIT;
});

ok($node->poll_query_until('postgres',
		"SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'subbilling worker' AND wait_event = 'PgSleep')"),
	'the worker is stalled in its second batch');
my $pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'subbilling worker'");
my $run = sql("SELECT id FROM subbilling.worker_runs WHERE status = 'running'");
is(sql("SELECT count(*) FROM public.billed"), '2', 'the first batch is committed');

sql("DELETE FROM public.stall");
my $off = -s $node->logfile;
ok(kill('KILL', $pid), 'SIGKILL sent to the worker');
ok($node->wait_for_log(qr/all server processes terminated; reinitializing/, $off),
	'the postmaster reinitializes after the crash');

ok($node->poll_query_until('postgres',
		"SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'subbilling worker' AND pid <> $pid)"),
	'the worker is back');
ok($node->poll_query_until('postgres',
		"SELECT status = 'error' FROM subbilling.worker_runs WHERE id = $run"),
	'the interrupted run is marked failed');
is(sql("SELECT message FROM subbilling.worker_runs WHERE id = $run"),
	'run interrupted: the worker exited before finishing it', 'with an explanation');
ok($node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM public.due)"),
	'the remaining items are billed after the restart');
is(sql("SELECT count(*), count(DISTINCT item), min(item), max(item) FROM public.billed"),
	'5|5|1|5', 'every item billed exactly once: the killed batch was rolled back');
is(sql("SELECT count(DISTINCT txid) FROM public.billed"), '3',
	'in three batch transactions (2 + 2 + 1 items)');
ok($node->poll_query_until('postgres',
		"SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE id > $run AND status = 'ok' AND invoices > 0)"),
	'a later run completes ok');

$node->stop('fast');
done_testing();
