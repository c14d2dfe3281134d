# Events: a second connection LISTENs on channel "subbilling" and receives the
# JSON of the event's identifiers only after the writer commits, never after a rollback; the
# subbilling.notify switch; notifications carry no payload whatever its size; and
# events_after() never hands out an id past an event still being written.
use strict;
use warnings FATAL => 'all';

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('notify');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION subbilling CASCADE');
$node->safe_psql('postgres', q{
    INSERT INTO subbilling.products (code, name) VALUES ('saas', 'SaaS');
    INSERT INTO subbilling.plans (code, product_id, name, billing_period, pricing_model, price)
    SELECT 'basic', id, 'Basic', 'monthly', 'per_unit', '99.00 SEK' FROM subbilling.products;
    INSERT INTO subbilling.accounts (external_id, name, country, currency) VALUES ('c1', 'Kund AB', 'SE', 'SEK');
});
my $acct = $node->safe_psql('postgres', "SELECT id FROM subbilling.accounts WHERE external_id = 'c1'");

my $listener = $node->background_psql('postgres');
my $writer = $node->background_psql('postgres');
my $other = $node->background_psql('postgres');
$listener->query_safe('LISTEN subbilling');

# Everything the listener has received so far: a list of payload strings.
# psql prints notifications after each command, so poll with a trivial query
# until a payload matching $until arrives.
sub notifications
{
	my ($until) = @_;
	my @got;
	for my $try (1 .. 100)
	{
		my $out = $listener->query_safe('SELECT 1');
		while ($out =~ /Asynchronous notification "subbilling" with payload "(.*)" received from server process with PID \d+\./g)
		{
			push @got, $1;
		}
		last if grep { $_ =~ $until } @got;
		select(undef, undef, undef, 0.05);
	}
	return @got;
}

# A marker notification committed by a third session: notifications arrive in
# commit order, so once the listener has the marker, anything committed
# before it would have arrived too.
my $marker = 0;
sub marker
{
	$marker++;
	$other->query_safe("SELECT pg_notify('subbilling', 'marker-$marker')");
	return qr/^marker-$marker$/;
}

# ---------------------------------------------------------------- delivered at commit, not before
$writer->query_safe('BEGIN');
my $sub = $writer->query_safe("SELECT subbilling.subscribe($acct, 'basic', 2, '2025-03-01')");
my @got = notifications(marker());
is_deeply(\@got, ['marker-1'], 'nothing arrives while the writer has not committed');

$writer->query_safe('COMMIT');
@got = notifications(qr/subscription\.created/);
is(scalar(@got), 1, 'after COMMIT: one notification');
my $note = decode_json($got[0]);
my $event_id = $node->safe_psql('postgres',
	"SELECT id FROM subbilling.events WHERE subscription_id = $sub AND type = 'subscription.created'");
is($note->{id}, $event_id, 'payload: id of the event row');
is($note->{type}, 'subscription.created', 'payload: type');
is($note->{account_id}, $acct, 'payload: account_id');
is($note->{subscription_id}, $sub, 'payload: subscription_id');
is_deeply([ sort keys %$note ], [ 'account_id', 'id', 'subscription_id', 'type' ],
	'identifiers only: no payload, names, amounts or free text (any role may LISTEN)');
is($node->safe_psql('postgres', "SELECT payload->'item'->>'plan' FROM subbilling.events WHERE id = $event_id"),
	'basic', 'the rest is read from the event row (events_after)');
ok(!exists $note->{invoice_id}, 'no invoice_id key when there is none');

# ---------------------------------------------------------------- never after a rollback
$writer->query_safe('BEGIN');
$writer->query_safe("SELECT subbilling.change_quantity($sub, 3, '2025-05-01')");
$writer->query_safe("SELECT subbilling.cancel($sub, '2025-06-01')");
$writer->query_safe('ROLLBACK');
@got = notifications(marker());
is_deeply(\@got, ['marker-2'], 'after ROLLBACK: nothing (the marker committed later arrives alone)');
is($node->safe_psql('postgres', "SELECT count(*) FROM subbilling.events WHERE subscription_id = $sub"),
	'1', 'and no event row');

# a rolled-back subtransaction takes its notification with it
$writer->query_safe('BEGIN');
$writer->query_safe('SAVEPOINT s');
$writer->query_safe("SELECT subbilling.change_quantity($sub, 4, '2025-04-01')");
$writer->query_safe('ROLLBACK TO SAVEPOINT s');
$writer->query_safe("SELECT subbilling.change_quantity($sub, 5, '2025-04-01')");
$writer->query_safe('COMMIT');
@got = notifications(qr/subscription\.changed/);
is(scalar(@got), 1, 'savepoint rolled back: only the kept change is announced');
is($node->safe_psql('postgres', 'SELECT payload->\'new\'->>\'quantity\' FROM subbilling.events WHERE id = '
		. decode_json($got[0])->{id}), '5', 'the kept change: quantity 5');

# several events of one transaction arrive at its commit, in order
$writer->query_safe('BEGIN');
$writer->query_safe("SELECT subbilling.pause($sub, '2025-07-01', '2025-08-01')");
$writer->query_safe("SELECT subbilling.resume($sub, '2025-07-15')");
$writer->query_safe('COMMIT');
@got = notifications(qr/subscription\.resumed/);
is_deeply([ map { decode_json($_)->{type} } @got ], [ 'subscription.paused', 'subscription.resumed' ],
	'two events of one transaction, in order');

# ---------------------------------------------------------------- the switch
$writer->query_safe('SET subbilling.notify = off');
$writer->query_safe("SELECT subbilling.change_quantity($sub, 6, '2025-09-01')");
@got = notifications(marker());
is_deeply(\@got, ['marker-3'], 'subbilling.notify = off: no notification');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM subbilling.events WHERE subscription_id = $sub AND payload->'new'->>'quantity' = '6'"),
	'1', 'but the event row is written');
$writer->query_safe('RESET subbilling.notify');

# ---------------------------------------------------------------- payload size
$writer->query_safe(
	"SELECT subbilling_internal.emit_event($acct, 'test.big', NULL, jsonb_build_object('blob', repeat('x', 9000)))");
@got = notifications(qr/test\.big/);
is(scalar(@got), 1, 'an oversized event is still announced');
my $big = decode_json($got[0]);
ok(length($got[0]) < 200 && !exists $big->{payload} && !exists $big->{truncated},
	'by its identifiers: the size of an event never matters to NOTIFY');
is($node->safe_psql('postgres', "SELECT length(payload->>'blob') FROM subbilling.events WHERE id = $big->{id}"),
	'9000', 'the row keeps the whole payload');

my $longest = $node->safe_psql('postgres', 'SELECT max(octet_length(payload::text)) FROM subbilling.events WHERE type LIKE \'subscription.%\'');
ok($longest < 2000, "lifecycle payloads are small ($longest bytes at most)");

# ---------------------------------------------------------------- events_after never skips a late commit
my $last = $node->safe_psql('postgres', 'SELECT max(id) FROM subbilling.events');
$writer->query_safe('BEGIN');
my $sub2 = $writer->query_safe("SELECT subbilling.subscribe($acct, 'basic')");        # id $last + 1, uncommitted
my $sub3 = $other->query_safe("SELECT subbilling.subscribe($acct, 'basic', 3)");      # id $last + 2, committed
is($node->safe_psql('postgres', "SELECT count(*) FROM subbilling.events WHERE id > $last"), '1',
	'the later event is committed and visible');
is($node->safe_psql('postgres', "SELECT count(*) FROM subbilling.events_after($last)"), '0',
	'events_after holds it back: an earlier id is still being written');
$writer->query_safe('COMMIT');
is($node->safe_psql('postgres', "SELECT string_agg(subscription_id::text, ',' ORDER BY id) FROM subbilling.events_after($last)"),
	"$sub2,$sub3", 'after the commit: both, in id order');

$last = $node->safe_psql('postgres', 'SELECT max(id) FROM subbilling.events');
$writer->query_safe('BEGIN');
$writer->query_safe("SELECT subbilling.subscribe($acct, 'basic')");
my $sub4 = $other->query_safe("SELECT subbilling.subscribe($acct, 'basic', 4)");
is($node->safe_psql('postgres', "SELECT count(*) FROM subbilling.events_after($last)"), '0',
	'held back again while the earlier writer is open');
$writer->query_safe('ROLLBACK');
is($node->safe_psql('postgres', "SELECT string_agg(subscription_id::text, ',' ORDER BY id) FROM subbilling.events_after($last)"),
	"$sub4", 'after its rollback: the committed one (the rolled-back id is a gap)');

my ($rc, $stdout, $stderr) = $node->psql('postgres',
	'BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM subbilling.events_after(0); COMMIT;');
like($stderr, qr/events_after needs READ COMMITTED isolation/, 'events_after refuses REPEATABLE READ');

$listener->quit;
$writer->quit;
$other->quit;
$node->stop;
done_testing();
