# The background worker runs the invoicing engine: it bills a due
# subscription within its naptime and a LISTEN client receives
# invoice.finalized; a subscription that makes billing fail is recorded in
# billing_errors (and worker_status) and skipped while the others are billed;
# an immediate shutdown in the middle of a large run, then a restart: every
# due subscription ends up with exactly one invoice, no charge is billed
# twice, the numbers have no gap.
use strict;
use warnings FATAL => 'all';

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('billing');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'subbilling'
subbilling.naptime = 1
subbilling.database = 'postgres'
subbilling.batch_size = 200
timezone = 'UTC'
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION subbilling CASCADE;
INSERT INTO subbilling.products (code, name) VALUES ('saas', 'SaaS');
INSERT INTO subbilling.plans (code, product_id, name, billing_period, pricing_model, price)
SELECT 'basic', id, 'Basic', '1 month', 'per_unit', '99.00 SEK' FROM subbilling.products;
INSERT INTO subbilling.accounts (external_id, name, country, currency, payment_terms_days)
VALUES ('first', 'Kund AB', 'SE', 'SEK', 10);
});

my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN subbilling');

# The notifications received so far (payload strings), polling until one
# matches $until.
sub notifications
{
	my ($until) = @_;
	my @got;
	for my $try (1 .. 300)
	{
		my $out = $listener->query_safe('SELECT 1');
		while ($out =~ /Asynchronous notification "subbilling" with payload "(.*)" received from server process with PID \d+\./g)
		{
			push @got, $1;
		}
		last if grep { $_ =~ $until } @got;
		select(undef, undef, undef, 0.1);
	}
	return @got;
}

# ---------------------------------------------------------------- billed within naptime, announced
my $sub = sql(q{
SELECT subbilling.subscribe(a.id, 'basic', 2, current_date - 1) FROM subbilling.accounts a WHERE external_id = 'first'
});
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM subbilling.invoices WHERE subscription_id = $sub"),
	'the worker bills a due subscription');
my @got = notifications(qr/invoice\.finalized/);
my ($final) = grep { $_->{type} eq 'invoice.finalized' } map { decode_json($_) } @got;
ok($final, 'a LISTEN client receives invoice.finalized');
is(join(',', sort keys %$final), 'account_id,id,invoice_id,subscription_id,type',
	'the notification carries identifiers only');
# the event itself is read with events_after, from the id before the one announced
my $event = decode_json(sql("SELECT to_jsonb(e) FROM subbilling.events_after($final->{id} - 1, 1) AS e"));
is($event->{id}, $final->{id}, 'events_after hands out the announced event');
$final->{payload} = $event->{payload};
my $inv = sql("SELECT id || '|' || number || '|' || total || '|' || currency || '|' || due_date || '|' || reference
                 FROM subbilling.invoices WHERE subscription_id = $sub");
is(join('|', $final->{invoice_id}, $final->{payload}{number}, $final->{payload}{total},
		$final->{payload}{currency}, $final->{payload}{due_date}, $final->{payload}{reference}),
	$inv, 'invoice.finalized carries id, number, total, currency, due date and reference');
is($final->{payload}{total}, '247.50 SEK', 'two seats at 99.00 with 25 % VAT');
is(sql("SELECT due_date - issue_date FROM subbilling.invoices WHERE subscription_id = $sub"), '10',
	"due after the account's 10 days");
ok((grep { decode_json($_)->{type} eq 'invoice.created' } @got), 'and invoice.created before it');
is(sql("SELECT invoices >= 1 FROM subbilling.worker_runs WHERE invoices > 0 ORDER BY id LIMIT 1"), 't',
	'the worker run counts the invoice');

# ---------------------------------------------------------------- a failing subscription is skipped
sql(q{
INSERT INTO subbilling.accounts (external_id, name, country, currency)
SELECT 'e' || g, 'Kund ' || g, 'SE', 'SEK' FROM generate_series(1, 3) g;
CREATE FUNCTION public.refuse_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.account_id = (SELECT id FROM subbilling.accounts WHERE external_id = 'e2') THEN
        RAISE EXCEPTION 'no invoice for this customer today' USING ERRCODE = 'SBT99';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_lines BEFORE INSERT ON subbilling.invoice_lines
    FOR EACH ROW EXECUTE FUNCTION public.refuse_lines();
SELECT count(subbilling.subscribe(id, 'basic', 1, current_date - 1))
  FROM subbilling.accounts WHERE external_id LIKE 'e_';
});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM subbilling.billing_errors e JOIN subbilling.accounts a ON a.id = e.account_id
		  WHERE a.external_id = 'e2'"),
	'the failure is recorded in billing_errors');
is(sql("SELECT string_agg(a.external_id, ',' ORDER BY a.external_id) FROM subbilling.invoices i
          JOIN subbilling.accounts a ON a.id = i.account_id WHERE a.external_id LIKE 'e_'"),
	'e1,e3', 'the others are billed');
is(sql("SELECT e.sqlstate || ' ' || e.message || ' ' || (e.run_id IS NOT NULL)
          FROM subbilling.billing_errors e JOIN subbilling.accounts a ON a.id = e.account_id WHERE a.external_id = 'e2'"),
	'SBT99 no invoice for this customer today true', 'with its SQLSTATE, message and run');
is(sql("SELECT open_errors >= 1 AND recent_errors::text LIKE '%no invoice for this customer today%' FROM subbilling.worker_status"),
	't', 'worker_status shows the open error');
ok($node->poll_query_until('postgres',
		"SELECT errors >= 1 FROM subbilling.worker_runs WHERE errors > 0 ORDER BY id DESC LIMIT 1"),
	'the worker run counts the error');
sql('DROP TRIGGER refuse_lines ON subbilling.invoice_lines');

# ---------------------------------------------------------------- immediate shutdown mid-run
$listener->quit;
my $n = 20000;
sql("ALTER SYSTEM SET subbilling.worker_enabled = off; SELECT pg_reload_conf();");
ok($node->poll_query_until('postgres', "SELECT current_setting('subbilling.worker_enabled') = 'off'"),
	'worker disabled while the customers are loaded');
sql(qq{
INSERT INTO subbilling.accounts (external_id, name, country, currency)
SELECT 'bulk' || g, 'Bulk ' || g, 'NO', 'NOK' FROM generate_series(1, $n) g;
INSERT INTO subbilling.plans (code, product_id, name, billing_period, price)
SELECT 'norsk', id, 'Norsk', '1 month', '150.00 NOK' FROM subbilling.products;
SELECT count(subbilling.subscribe(a.id, 'norsk', 1, current_date - 1))
  FROM subbilling.accounts a WHERE a.external_id LIKE 'bulk%';
-- slow the batches down a little so that the shutdown lands mid-run
CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END \$\$;
CREATE TRIGGER slow AFTER INSERT ON subbilling.invoices FOR EACH STATEMENT EXECUTE FUNCTION public.slow();
});
my $bulk = "SELECT count(*) FROM subbilling.invoices i JOIN subbilling.accounts a ON a.id = i.account_id
             WHERE a.external_id LIKE 'bulk%'";
sql("ALTER SYSTEM SET subbilling.worker_enabled = on; SELECT pg_reload_conf();");
ok($node->poll_query_until('postgres', "SELECT ($bulk) >= 2000"), 'the large run is under way');
$node->stop('immediate');
$node->start;
my $after_crash = sql($bulk);
ok($after_crash < $n, "the shutdown interrupted the run ($after_crash of $n billed)");
ok($node->poll_query_until('postgres', "SELECT ($bulk) = $n", 't'), 'after the restart every subscription is billed');

is(sql("SELECT count(*) FROM (SELECT subscription_id FROM subbilling.invoices GROUP BY 1 HAVING count(*) > 1) d"),
	'0', 'no subscription has two invoices');
is(sql("SELECT count(*) FROM (SELECT subscription_id, plan_id, charge_type, key_start FROM subbilling.invoice_lines
                               GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d"),
	'0', 'no charge is billed twice');
is(sql("SELECT bool_and(max - min + 1 = n) FROM (SELECT max(number_seq) AS max, min(number_seq) AS min, count(*) AS n
                                                  FROM subbilling.invoices GROUP BY series_id) s"),
	't', 'the numbers have no gap');
is(sql("SELECT count(*) FROM subbilling.subscriptions s
         WHERE NOT EXISTS (SELECT FROM subbilling.invoices i WHERE i.account_id = s.account_id AND i.subscription_id = s.id)
           AND s.account_id <> (SELECT id FROM subbilling.accounts WHERE external_id = 'e2')"),
	'0', 'nothing is left unbilled (but the refused one)');
is(sql("SELECT count(*) FROM subbilling.invoices i
         WHERE (SELECT count(*) FROM subbilling.events e WHERE e.account_id = i.account_id AND e.invoice_id = i.id) <> 2"),
	'0', 'every invoice has exactly its two events');
is(sql("SET search_path = subbilling; SELECT count(*) FROM subbilling.invoices i
         WHERE i.total <> (SELECT sum(l.net) + sum(l.tax) FROM subbilling.invoice_lines l
                            WHERE l.account_id = i.account_id AND l.invoice_id = i.id)"),
	'0', 'every total is the sum of its lines');
ok(sql("SELECT count(*) FROM subbilling.worker_runs WHERE status = 'ok' AND invoices > 0") >= 2,
	'worker runs before and after the restart billed');

$node->stop;
done_testing();
