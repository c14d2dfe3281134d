# The subbilling background worker: start, cycles, batches, errors, reload,
# wake-up, disabling, moving database, SIGTERM, restart; and the extension
# without preloading.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('worker');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'subbilling'
subbilling.naptime = 1
subbilling.database = 'postgres'
subbilling.batch_size = 2
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub worker_pid
{
	return sql(
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'subbilling worker'");
}

sub max_run { return sql("SELECT coalesce(max(id), 0) FROM subbilling.worker_runs"); }

sub poll
{
	my ($query, $what) = @_;
	ok($node->poll_query_until('postgres', $query), $what);
}

my $placeholder = q{
CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE sql VOLATILE AS $$ SELECT 0, 0, false $$;
};

# --- The worker starts and waits for the extension ------------------------
poll("SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'subbilling worker'",
	'worker shows in pg_stat_activity');
my $pid = worker_pid();
like($pid, qr/^\d+$/, 'worker has a pid');
ok( $node->wait_for_log(
		qr/subbilling worker: extension "subbilling" is not installed in database "postgres", waiting for it/),
	'worker logs that it waits for the extension');
is(sql("SELECT datname || '|' || application_name FROM pg_stat_activity WHERE pid = $pid"),
	'postgres|subbilling worker', 'connected to subbilling.database, appname reported');

sql('CREATE EXTENSION subbilling CASCADE');

# --- A first cycle with the placeholders ----------------------------------
poll("SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE status = 'ok' AND finished_at IS NOT NULL)",
	'a finished ok run appears');
is( sql(
		"SELECT origin, pid, batch_size, batches, invoices, errors, dunning_steps, transitions, sqlstate IS NULL, message IS NULL, as_of = started_at
		   FROM subbilling.worker_runs WHERE status = 'ok' ORDER BY id LIMIT 1"),
	"worker|$pid|2|2|0|0|0|0|t|t|t",
	'first run: one billing and one dunning batch, no work, as_of = started_at');
is( sql(
		"SELECT worker_pid, worker_database, preloaded, enabled, naptime, batch_size, database,
		        last_run_id = (SELECT max(id) FROM subbilling.worker_runs),
		        last_ok_finished_at IS NOT NULL, open_errors, recent_errors
		   FROM subbilling.worker_status"),
	"$pid|postgres|t|t|1|2|postgres|t|t|0|[]",
	'worker_status shows the worker, its settings and the last run');
ok($node->log_contains(qr/subbilling worker: extension "subbilling" found in database "postgres"/),
	'worker logs that it found the extension');

# --- Batches: one transaction each, fixed as_of, counts add up -------------
sql(q{
CREATE TABLE public.due_items (n int);
CREATE TABLE public.batch_log (txid bigint, batch_size int, as_of timestamptz, run_id bigint);
BEGIN;
CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n_ok int;
    n_err int;
BEGIN
    INSERT INTO public.batch_log
    VALUES (txid_current(), run_billing_batch.batch_size, run_billing_batch.as_of,
            subbilling.current_run_id());
    WITH d AS (DELETE FROM public.due_items
                WHERE ctid IN (SELECT ctid FROM public.due_items ORDER BY n
                                LIMIT run_billing_batch.batch_size)
               RETURNING n)
    SELECT count(*) FILTER (WHERE n <> 5), count(*) FILTER (WHERE n = 5) INTO n_ok, n_err FROM d;
    RETURN QUERY SELECT n_ok, n_err, EXISTS (SELECT FROM public.due_items);
END
$$;
INSERT INTO public.due_items SELECT generate_series(1, 5);
COMMIT;
});
poll("SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE invoices = 4)",
	'a run bills the five due items');
my $run = sql("SELECT id FROM subbilling.worker_runs WHERE invoices = 4");
is(sql("SELECT status, batches, invoices, errors, dunning_steps FROM subbilling.worker_runs WHERE id = $run"),
	'ok|4|4|1|0', 'three billing batches of at most 2 items plus one dunning batch, counts summed');
is( sql(
		"SELECT count(*), count(DISTINCT l.txid), bool_and(l.batch_size = 2), bool_and(l.as_of = r.as_of)
		   FROM public.batch_log l JOIN subbilling.worker_runs r ON r.id = l.run_id WHERE l.run_id = $run"),
	'3|3|t|t',
	'each batch in its own transaction, with batch_size, the run\'s as_of and current_run_id()');
is(sql("SELECT count(*) FROM public.due_items"), '0', 'all due items handled');

# --- An error escaping a batch: recorded, worker survives -----------------
# Two batches succeed, the third raises: the committed batches stay.
sql(q{
BEGIN;
CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n_ok int;
BEGIN
    IF NOT EXISTS (SELECT FROM public.due_items) THEN
        RAISE EXCEPTION 'billing engine exploded' USING ERRCODE = 'SBT01', DETAIL = 'Raised by the test.';
    END IF;
    WITH d AS (DELETE FROM public.due_items
                WHERE ctid IN (SELECT ctid FROM public.due_items LIMIT 2) RETURNING 1)
    SELECT count(*) INTO n_ok FROM d;
    RETURN QUERY SELECT n_ok, 0, true;
END
$$;
INSERT INTO public.due_items SELECT generate_series(1, 4);
COMMIT;
});
poll("SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE status = 'error')",
	'a failed run is recorded');
my $err = sql("SELECT min(id) FROM subbilling.worker_runs WHERE status = 'error'");
is( sql(
		"SELECT pid, sqlstate, message, detail, batches, invoices, finished_at IS NOT NULL
		   FROM subbilling.worker_runs WHERE id = $err"),
	"$pid|SBT01|billing engine exploded|Raised by the test.|2|4|t",
	'error run: SQLSTATE, message, detail and the work committed before the error');
is(sql("SELECT count(*) FROM public.due_items"), '0', 'batches before the error stay committed');
ok($node->log_contains(qr/ERROR:  billing engine exploded/), 'the error is in the server log');
poll("SELECT count(*) >= 2 FROM subbilling.worker_runs WHERE status = 'error' AND id > $err - 1",
	'the worker keeps running cycles after an error');
is(worker_pid(), $pid, 'same worker process after errors (no restart)');
is( sql("SELECT last_run_status, last_run_sqlstate, last_run_message FROM subbilling.worker_status"),
	'error|SBT01|billing engine exploded', 'worker_status shows the failed run');

sql($placeholder);
my $last_err = sql("SELECT max(id) FROM subbilling.worker_runs WHERE status = 'error'");
poll("SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE status = 'ok' AND id > $last_err)",
	'runs succeed again once the function is fixed');
is(worker_pid(), $pid, 'still the same worker process');

# --- pg_cancel_backend during a batch: recorded as 57014, worker survives --
sql(q{
CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_sleep(300);
    RETURN QUERY SELECT 0, 0, false;
END
$$;
});
poll("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid AND wait_event = 'PgSleep')",
	'worker is inside a long batch');
sql($placeholder);    # the call in progress keeps the sleeping body
is(sql("SELECT pg_cancel_backend($pid)"), 't', 'cancel sent');
poll("SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE status = 'error' AND sqlstate = '57014')",
	'the cancelled batch is recorded as a failed run');
is( sql("SELECT message FROM subbilling.worker_runs WHERE sqlstate = '57014'"),
	'canceling statement due to user request', 'cancel message recorded');
is(worker_pid(), $pid, 'same worker process after a cancel');

# --- Reloading naptime ----------------------------------------------------
my $off = -s $node->logfile;
sql("ALTER SYSTEM SET subbilling.naptime = 3");
sql("SELECT pg_reload_conf()");
ok($node->wait_for_log(qr/subbilling worker: naptime is now 3 s/, $off), 'new naptime logged');
my $m = max_run();
poll("SELECT count(*) >= 3 FROM subbilling.worker_runs WHERE id > $m", 'three more runs');
my $gap = sql(
	"SELECT min(g) FROM (SELECT extract(epoch FROM started_at - lag(started_at) OVER (ORDER BY id)) AS g
	                       FROM subbilling.worker_runs WHERE id >= $m) s");
cmp_ok($gap, '>=', 2.5, "runs start at least 3 s apart after the reload (min gap $gap s)");
is(sql("SELECT naptime FROM subbilling.worker_status"), '3', 'worker_status shows naptime 3');

# --- wake_worker() with a long naptime -------------------------------------
$off = -s $node->logfile;
sql("ALTER SYSTEM SET subbilling.naptime = 3600");
sql("SELECT pg_reload_conf()");
ok($node->wait_for_log(qr/subbilling worker: naptime is now 3600 s/, $off), 'naptime 3600 logged');
poll("SELECT NOT EXISTS (SELECT FROM subbilling.worker_runs WHERE status = 'running')",
	'no cycle in progress');
$m = max_run();
sleep(3);
is(sql("SELECT count(*) FROM subbilling.worker_runs WHERE id > $m"), '0',
	'no run for three seconds with naptime 3600');
my $t0 = time();
is(sql("SELECT subbilling.wake_worker()"), 't', 'wake_worker() returns true');
poll("SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE id > $m AND status = 'ok')",
	'wake_worker() triggers a run');
note(sprintf('run after wake_worker() within %.2f s', time() - $t0));

# wake_worker() from a database the worker does not serve
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION subbilling CASCADE');
my ($out, $stderr);
$node->psql('other', 'SELECT subbilling.wake_worker()', stdout => \$out, stderr => \$stderr);
is($out, 'f', 'wake_worker() in another database returns false');
like($stderr, qr/NOTICE:  subbilling worker serves another database\nDETAIL:  The worker is connected to database "postgres"/,
	'with a NOTICE naming the database');

# --- worker_enabled = off ---------------------------------------------------
$off = -s $node->logfile;
sql("ALTER SYSTEM SET subbilling.worker_enabled = off");
sql("ALTER SYSTEM SET subbilling.naptime = 1");
sql("SELECT pg_reload_conf()");
ok($node->wait_for_log(qr/subbilling worker: disabled/, $off), 'disabling logged');
$m = max_run();
$node->psql('postgres', 'SELECT subbilling.wake_worker()', stdout => \$out, stderr => \$stderr);
is($out, 'f', 'wake_worker() returns false when disabled');
like($stderr, qr/NOTICE:  subbilling worker is disabled/, 'with a NOTICE');
sleep(4);
is(sql("SELECT count(*) FROM subbilling.worker_runs WHERE id > $m"), '0', 'no runs while disabled');
is(sql("SELECT worker_pid, enabled FROM subbilling.worker_status"), "$pid|f",
	'worker_status: still running, disabled');
$off = -s $node->logfile;
sql("ALTER SYSTEM RESET subbilling.worker_enabled");
sql("SELECT pg_reload_conf()");
ok($node->wait_for_log(qr/subbilling worker: enabled/, $off), 'enabling logged');
poll("SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE id > $m AND status = 'ok')",
	'runs resume when enabled');
is(worker_pid(), $pid, 'the same process throughout');

# --- Moving the worker to another database ----------------------------------
$off = -s $node->logfile;
sql("ALTER SYSTEM SET subbilling.database = 'other'");
sql("SELECT pg_reload_conf()");
ok( $node->wait_for_log(
		qr/subbilling worker: subbilling.database changed from "postgres" to "other", exiting to be restarted there/,
		$off),
	'database change logged');
poll("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'subbilling worker' AND datname = 'other' AND pid <> $pid)",
	'the worker is restarted in the new database');
ok($node->poll_query_until('other',
		"SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE status = 'ok' AND origin = 'worker')"),
	'runs happen in the new database');
$off = -s $node->logfile;
sql("ALTER SYSTEM RESET subbilling.database");
sql("SELECT pg_reload_conf()");
poll("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'subbilling worker' AND datname = 'postgres')",
	'and back to postgres');
$pid = worker_pid();

# --- SIGTERM (fast shutdown) in the middle of a batch -----------------------
sql(q{
CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_sleep(300);
    RETURN QUERY SELECT 0, 0, false;
END
$$;
});
poll("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid AND wait_event = 'PgSleep')",
	'worker is inside a long batch');
my $running = sql("SELECT id FROM subbilling.worker_runs WHERE status = 'running'");
like($running, qr/^\d+$/, 'its run is marked running');
sql($placeholder);    # the batch in progress keeps the old body
$off = -s $node->logfile;
$t0 = time();
$node->stop('fast');
note(sprintf('fast shutdown took %.2f s', time() - $t0));
pass('fast shutdown completes while the worker is in a batch');
my $log = slurp_file($node->logfile, $off);
like($log, qr/terminating background worker "subbilling worker" due to administrator command/,
	'SIGTERM ends the worker');
unlike($log, qr/terminated by signal|PANIC|TRAP/, 'no crash at shutdown');

$off = -s $node->logfile;
$node->start;
poll("SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'subbilling worker'",
	'a restart brings the worker back');
isnt(worker_pid(), $pid, 'a new worker process');
poll("SELECT status = 'error' FROM subbilling.worker_runs WHERE id = $running",
	'the run cut short by SIGTERM is marked failed');
is( sql("SELECT message, finished_at IS NOT NULL FROM subbilling.worker_runs WHERE id = $running"),
	'run interrupted: the worker exited before finishing it|t', 'with an explanation');
poll("SELECT EXISTS (SELECT FROM subbilling.worker_runs WHERE id > $running AND status = 'ok')",
	'runs continue after the restart');

$log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|TRAP|was terminated/, 'no crash in the whole log');
$node->stop('fast');

# --- Without shared_preload_libraries --------------------------------------
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION subbilling CASCADE');
$plain->psql('postgres', 'SELECT subbilling.wake_worker()', stdout => \$out, stderr => \$stderr);
is($out, 'f', 'without preloading wake_worker() returns false');
like($stderr, qr/NOTICE:  subbilling worker is not running\nDETAIL:  The library subbilling was not loaded through shared_preload_libraries/,
	'with a NOTICE saying why');
is( $plain->safe_psql('postgres',
		'SELECT worker_pid IS NULL, preloaded, enabled, naptime, batch_size, database, last_run_id IS NULL FROM subbilling.worker_status'),
	't|f|t|60|1000|postgres|t', 'worker_status: no worker, default settings, no run');
is( $plain->safe_psql('postgres', 'SELECT * FROM subbilling.run_worker_cycle()'),
	'0|0|0', 'run_worker_cycle() works without the worker');
is( $plain->safe_psql('postgres',
		"SELECT origin, status, batches, pid <> 0 FROM subbilling.worker_runs"),
	'sql|ok|2|t', 'and records its run');
is( $plain->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'subbilling worker'"),
	'0', 'no worker process');
is( $plain->safe_psql('postgres', "SELECT subbilling.worker_config() IS NOT NULL; SHOW subbilling.naptime"),
	"t\n1min", 'settings are defined once the library is loaded');
$plain->stop;

done_testing();
