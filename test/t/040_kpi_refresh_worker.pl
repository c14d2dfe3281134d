# The background worker keeps the KPI snapshots fresh: after a cycle it runs
# refresh_kpi_snapshots(true) when subbilling.kpi_refresh_interval has passed
# since the last one.  The first refresh builds the whole snapshots (none is
# of today); a lifecycle change marks its account, and a later cycle claims
# the mark; the figures equal the definition's throughout.  With the
# interval at 0 (a reload) nothing is refreshed and marks stay.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('kpi_refresh');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'subbilling'
subbilling.naptime = 1
subbilling.kpi_refresh_interval = 1
subbilling.database = 'postgres'
timezone = 'UTC'
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION subbilling CASCADE;
INSERT INTO subbilling.products (code, name) VALUES ('saas', 'SaaS');
INSERT INTO subbilling.plans (code, product_id, name, billing_period, price)
SELECT x.code, p.id, x.code, '1 month', x.price::subbilling.price
  FROM subbilling.products p, (VALUES ('basic', '99.00 SEK'), ('pro', '299.00 SEK')) AS x(code, price);
INSERT INTO subbilling.accounts (external_id, name, country, currency)
SELECT 'k' || g, 'Kund ' || g, 'SE', 'SEK' FROM generate_series(1, 5) g;
SELECT count(subbilling.subscribe(a.id, 'basic', 1, current_date - 70)) FROM subbilling.accounts a;
});

# polls q until it returns want (10 s at most); returns what it last got
sub poll
{
	my ($q, $want) = @_;
	my $got;
	for my $try (1 .. 100)
	{
		$got = sql($q);
		return $got if $got eq $want;
		select(undef, undef, undef, 0.1);
	}
	return $got;
}

my $usable = q{SELECT EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state
                 WHERE computed_on = current_date AND NOT building)};
my $marked = q{SELECT count(DISTINCT account_id) FROM subbilling_internal.kpi_dirty_accounts};
my $differ = q{SELECT count(*) FROM ((TABLE subbilling_internal.kpi_movements EXCEPT ALL TABLE subbilling_internal.kpi_movements_ref)
               UNION ALL (TABLE subbilling_internal.kpi_movements_ref EXCEPT ALL TABLE subbilling_internal.kpi_movements)) x};

is(poll($usable, 't'), 't', 'the worker builds the snapshots (none was of today)');
is(sql($marked), '0', 'no account is marked after the full refresh');
is(sql(q{SELECT count(*) FROM subbilling_internal.kpi_snapshot_customers}) > 0 ? 1 : 0, 1, 'with customer rows');

my $refreshed_at = sql(q{SELECT refreshed_at FROM subbilling_internal.kpi_snapshot_state});
# the other accounts' snapshot rows, by the transaction that wrote them
my $others = q{SELECT string_agg(c.xmin::text, ',' ORDER BY c.account_id, c.currency, c.month)
                 FROM subbilling_internal.kpi_snapshot_customers c JOIN subbilling.accounts a ON a.id = c.account_id
                WHERE a.external_id <> 'k2'};
my $others_before = sql($others);
sql(q{SELECT subbilling.change_plan(s.id, 'pro', current_date - 3)
        FROM subbilling.subscriptions s JOIN subbilling.accounts a ON a.id = s.account_id WHERE a.external_id = 'k2'});
is(poll($marked, '0'), '0', 'a later cycle claims the mark of a lifecycle change');
is(sql($others), $others_before,
   'by the marked-only refresh (the snapshots are not rebuilt: the other accounts\' rows stay)');
is(sql(qq{SELECT refreshed_at > '$refreshed_at' FROM subbilling_internal.kpi_snapshot_state}), 't',
   'which sets refreshed_at (kpi_snapshot_status)');
is(sql($differ), '0', q{the figures are the definition's});
is(sql(q{SELECT end_mrr FROM subbilling_internal.kpi_snapshot_months WHERE month = date_trunc('month', current_date)}),
   '69500', q{the month's sum includes the change (4 x 99.00 + 299.00)});

# interval 0: no refresh, the mark stays (and the views compute it live)
$node->append_conf('postgresql.conf', "subbilling.kpi_refresh_interval = 0\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('subbilling.kpi_refresh_interval') = '0'})
  or die 'the reload did not take';
sleep 2;    # a cycle or two with the old setting may still run
sql(q{SELECT subbilling.change_quantity(s.id, 3, current_date - 2)
        FROM subbilling.subscriptions s JOIN subbilling.accounts a ON a.id = s.account_id WHERE a.external_id = 'k3'});
sleep 3;
is(sql($marked), '1', 'with kpi_refresh_interval = 0 the worker leaves the mark');
is(sql($differ), '0', q{and the views still give the definition's figures});
ok(sql(q{SELECT count(*) FROM subbilling.worker_runs WHERE status = 'ok'}) >= 3, 'the billing cycles ran meanwhile');

$node->stop;
done_testing();
