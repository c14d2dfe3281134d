# The webhook worker against a receiver on 127.0.0.1 (test/webhook_receiver.py): every request
# signed as the Standard Webhooks specification says (checked by the receiver, by SQL's
# webhook_signature and, when the npm package standardwebhooks is installed, by the official
# Node library), failing endpoints retried with backoff until they answer, the events of an
# endpoint in id order, a hanging endpoint not holding up a live one, nothing for a rolled-back
# transaction, failure after subbilling.webhook_max_attempts with a webhook.failed event,
# redeliver(), secret rotation (two signatures), and an immediate shutdown in the middle of a
# request: the delivery is retried after the restart, never lost.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
my $tmp = PostgreSQL::Test::Utils::tempdir;
my ($portfile, $log, $secrets) = ("$tmp/port", "$tmp/requests.log", "$tmp/secrets.json");

my $receiver = IPC::Run::start([ $python, 'test/webhook_receiver.py', '--port-file', $portfile,
		'--log', $log, '--secrets', $secrets ], '>', "$tmp/receiver.out", '2>&1');
my $t0 = time;
usleep(50_000) until -s $portfile || time - $t0 > 20;
ok(-s $portfile, 'the receiver listens') or BAIL_OUT('no receiver: ' . slurp_file("$tmp/receiver.out"));
my $port = slurp_file($portfile);

my $node = PostgreSQL::Test::Cluster->new('webhooks');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'subbilling'
subbilling.worker_enabled = off
subbilling.webhook_retry_base = 200ms
subbilling.webhook_max_attempts = 4
subbilling.webhook_timeout = 5s
subbilling.webhook_poll_interval = 100ms
subbilling.webhook_concurrency = 4
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub requests
{
	my @r;
	open my $fh, '<', $log or return ();
	while (<$fh>) { push @r, decode_json($_); }
	close $fh;
	return @r;
}

my %secret;
sub write_secrets
{
	open my $fh, '>', "$secrets.tmp" or die;
	print $fh encode_json(\%secret);
	close $fh;
	rename "$secrets.tmp", $secrets or die;
}

sql(q{
CREATE EXTENSION subbilling CASCADE;
INSERT INTO subbilling.webhook_allowed_hosts (pattern) VALUES ('127.0.0.1');
INSERT INTO subbilling.accounts (external_id, name, email, country, currency)
VALUES ('cust-1', 'Moln AB', 'a@moln.example', 'SE', 'SEK');
});

# a: fails the first two requests of each event; b: answers at once (test.* only);
# c: never answers; d: always 410
my %ep;
for ([ a => "/fail/2/a", 'NULL' ], [ b => "/ok/b", q{'{test.*}'} ], [ c => "/hang/c", 'NULL' ],
	[ d => "/status/410/d", q{'{test.one}'} ])
{
	my ($name, $path, $types) = @$_;
	my ($id, $s) = split /\|/,
	  sql("SELECT id, secret FROM subbilling.create_webhook_endpoint('http://127.0.0.1:$port$path', $types)");
	$ep{$name} = $id;
	$secret{$name} = [$s];
}
write_secrets();

# three committed events, one rolled back, one in a rolled-back savepoint
sql(q{SELECT subbilling_internal.emit_event(1, 'test.one', NULL, '{"n": 1}')});
sql(q{BEGIN; SELECT subbilling_internal.emit_event(1, 'test.rolled_back', NULL, '{}'); ROLLBACK;});
sql(q{BEGIN; SAVEPOINT s; SELECT subbilling_internal.emit_event(1, 'test.in_savepoint', NULL, '{}');
      ROLLBACK TO SAVEPOINT s; SELECT subbilling_internal.emit_event(1, 'test.two', NULL, '{"n": 2}'); COMMIT;});
sql(q{SELECT subbilling_internal.emit_event(1, 'other.three', NULL, '{"n": 3}')});
my %ev = map { split /\|/ } split /\n/, sql("SELECT type, id FROM subbilling.events");

# b gets its two events while c's first request hangs
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM subbilling.webhook_deliveries WHERE endpoint_id = $ep{b} AND status = 'succeeded'"),
	'b: both test.* events delivered');
is(sql("SELECT count(*) FROM subbilling.webhook_deliveries WHERE endpoint_id = $ep{b}"), '2',
	'b: other.three is not for it');
is(sql(qq{SELECT count(*) FROM subbilling.webhook_delivery_attempts a
           JOIN subbilling.webhook_deliveries d ON d.id = a.delivery_id
          WHERE d.endpoint_id = $ep{c} AND a.finished_at IS NOT NULL}), '0',
	'b was served while c\'s first request still hung (timeout 5 s): a dead endpoint does not delay a live one');
ok(grep({ $_->{name} eq 'c' && ($_->{note} // '') eq 'hanging' } requests()), 'c got its request and hangs');

# a: 2 failures then success, for every event, in event order
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM subbilling.webhook_deliveries WHERE endpoint_id = $ep{a} AND status = 'succeeded'"),
	'a: all three events delivered in the end');
my %first3 = map { $_ => 1 } @ev{qw(test.one test.two other.three)};
my @a = grep { $_->{name} eq 'a' && $first3{ $_->{id} } } requests();
is(join(',', map { "$_->{id}:$_->{status}" } @a),
	join(',', map { ("$_:500", "$_:500", "$_:200") } @ev{qw(test.one test.two other.three)}),
	'a: each event failed twice, then succeeded, and the next event waited for it');
is(sql(qq{SELECT string_agg(a.attempt || ':' || coalesce(a.status_code::text, '-') || ':' || (a.next_attempt_at IS NOT NULL), ',' ORDER BY a.attempt)
           FROM subbilling.webhook_delivery_attempts a JOIN subbilling.webhook_deliveries d ON d.id = a.delivery_id
          WHERE d.endpoint_id = $ep{a} AND d.event_id = $ev{'test.one'}}),
	'1:500:true,2:500:true,3:200:false', 'a: every attempt recorded with its status code and next attempt');
# backoff: base 200 ms doubling, jitter between half and all of it
my @gaps = split /\n/, sql(qq{SELECT extract(epoch FROM a.started_at - lag(a.started_at) OVER (ORDER BY a.attempt))
           FROM subbilling.webhook_delivery_attempts a JOIN subbilling.webhook_deliveries d ON d.id = a.delivery_id
          WHERE d.endpoint_id = $ep{a} AND d.event_id = $ev{'test.two'} ORDER BY a.attempt OFFSET 1});
ok($gaps[0] >= 0.095 && $gaps[1] >= 0.19, "a: retries wait for the backoff (@gaps s; at least 0.1 then 0.2)");
is(sql(qq{SELECT last_status_code || ' ' || attempts || ' ' || (last_error IS NULL) FROM subbilling.webhook_deliveries
           WHERE endpoint_id = $ep{a} AND event_id = $ev{'test.one'}}), '200 3 true', 'a: delivery row complete');

# nothing for rolled-back events, anywhere
is(sql("SELECT count(*) FROM subbilling.events WHERE type IN ('test.rolled_back', 'test.in_savepoint')"), '0',
	'the rolled-back events do not exist');
is(scalar(grep { $_->{body} =~ /rolled_back|in_savepoint/ } requests()), 0, 'and no request carried them');

# d fails for good after 4 attempts; a webhook.failed event says so, delivered to a (all types)
# but not to d itself
ok($node->poll_query_until('postgres',
		"SELECT status = 'failed' FROM subbilling.webhook_deliveries WHERE endpoint_id = $ep{d}"),
	'd: failed');
is(sql("SELECT attempts || ' ' || last_status_code || ' ' || last_error FROM subbilling.webhook_deliveries WHERE endpoint_id = $ep{d}"),
	'4 410 HTTP status 410', 'd: four attempts, the last status and error');
my $failed = sql("SELECT id FROM subbilling.events WHERE type = 'webhook.failed'");
is(sql("SELECT payload - 'delivery_id' = jsonb_build_object('attempts', 4, 'event_id', $ev{'test.one'}, 'event_type', 'test.one', "
		  . "'endpoint_id', $ep{d}, 'status_code', 410, 'error', 'HTTP status 410') "
		  . "AND (payload->>'delivery_id')::bigint = (SELECT id FROM subbilling.webhook_deliveries WHERE endpoint_id = $ep{d}) "
		  . "FROM subbilling.events WHERE id = $failed"),
	't', 'the webhook.failed event names the delivery, endpoint, event, attempts, status and error');
ok($node->poll_query_until('postgres',
		"SELECT status = 'succeeded' FROM subbilling.webhook_deliveries WHERE endpoint_id = $ep{a} AND event_id = $failed"),
	'a received webhook.failed');
is(sql("SELECT count(*) FROM subbilling.webhook_deliveries WHERE event_id = $failed AND endpoint_id <> $ep{a} AND endpoint_id <> $ep{c}"),
	'0', 'not queued for d (whom it is about) nor b (test.* only)');

# redeliver: b gets test.one again, with the same webhook-id
my $bd = sql("SELECT id FROM subbilling.webhook_deliveries WHERE endpoint_id = $ep{b} AND event_id = $ev{'test.one'}");
sql("SELECT subbilling.redeliver($bd)");
ok($node->poll_query_until('postgres',
		"SELECT status = 'succeeded' AND total_attempts = 2 FROM subbilling.webhook_deliveries WHERE id = $bd"),
	'redeliver: delivered again');
is(scalar(grep { $_->{name} eq 'b' && $_->{id} eq $ev{'test.one'} } requests()), 2,
	'b received test.one twice with the same webhook-id');

# rotation: two signatures for keep_previous; each verifies with its own secret
my $old = $secret{b}[0];
my $new = sql("SELECT subbilling.rotate_webhook_secret($ep{b}, '1 hour')");
unshift @{ $secret{b} }, $new;    # the receivers keep the old ones to check the old requests
write_secrets();
my $five = sql(q{SELECT subbilling_internal.emit_event(1, 'test.five', NULL, '{"n": 5}')});
ok($node->poll_query_until('postgres',
		"SELECT status = 'succeeded' FROM subbilling.webhook_deliveries WHERE endpoint_id = $ep{b} AND event_id = $five"),
	'after the rotation: delivered');
my ($r5) = grep { $_->{name} eq 'b' && $_->{id} eq $five } requests();
ok($r5->{verified}, 'the new secret verifies');
my $body = $r5->{body} =~ s/'/''/gr;
is($r5->{signature},
	sql("SELECT subbilling.webhook_signature('$new', '$five', $r5->{timestamp}, '$body') || ' ' || "
		  . "subbilling.webhook_signature('$old', '$five', $r5->{timestamp}, '$body')"),
	'two signatures, the new secret\'s and the old one\'s, as webhook_signature computes them');
sql("SELECT subbilling.rotate_webhook_secret($ep{b}, '0')");
unshift @{ $secret{b} }, sql("SELECT secret FROM subbilling.webhook_endpoints WHERE id = $ep{b}");
write_secrets();

# every request: headers and body as the specification says, signature verified
my @all = grep { $_->{name} ne 'c' } requests();
is(scalar(grep { !$_->{verified} } @all), 0,
	'every request verifies (' . scalar(@all) . ' requests, webhook_receiver.py verify())');
is(scalar(grep { $_->{content_type} ne 'application/json' || $_->{id} !~ /^\d+$/ || abs($_->{timestamp} - $_->{at}) > 5 } @all), 0,
	'Content-Type application/json, webhook-id the event id, webhook-timestamp the time of sending');
is(scalar(grep { decode_json($_->{body})->{id} ne $_->{id} } @all), 0, 'the body is the event, its id the webhook-id');
is_deeply([ sort keys %{ decode_json($all[0]{body}) } ],
	[qw(account_id created_at id invoice_id payload subscription_id type)], 'the body has the columns of events_after');

# the official library (npm standardwebhooks), when installed
my @node_path = grep { -d "$_/standardwebhooks" }
  (split(/:/, $ENV{NODE_PATH} // ''), '/usr/lib/node_modules', '/usr/local/lib/node_modules');
SKIP:
{
	skip 'node or the npm package standardwebhooks is not installed (npm install -g standardwebhooks)', 1
	  unless @node_path && system('node --version >/dev/null 2>&1') == 0;
	# verify before the 5-minute tolerance runs out; c's hanging requests have no answer to check
	my $out = `NODE_PATH=$node_path[0] node test/webhook_verify.js $log $secrets 2>&1`;
	like($out, qr/^\{"checked":\d+,"verified":\d+,"failures":\[\]\}$/m, "the standardwebhooks library verifies every request: $out");
}

# an immediate shutdown while a request is in flight: retried after the restart
my ($eid) = split /\|/, sql("SELECT id FROM subbilling.create_webhook_endpoint('http://127.0.0.1:$port/hangfirst/e', '{crash.test}')");
$secret{e} = [sql("SELECT secret FROM subbilling.webhook_endpoints WHERE id = $eid")];
write_secrets();
my $crash = sql(q{SELECT subbilling_internal.emit_event(1, 'crash.test', NULL, '{}')});
$t0 = time;
usleep(50_000) until grep({ $_->{name} eq 'e' && ($_->{note} // '') eq 'hanging' } requests()) || time - $t0 > 60;
ok(grep({ $_->{name} eq 'e' } requests()), 'e: the request is in flight');
$node->stop('immediate');
$node->start;
ok($node->poll_query_until('postgres',
		"SELECT status = 'succeeded' FROM subbilling.webhook_deliveries WHERE endpoint_id = $eid"),
	'e: delivered after the restart');
is(sql(qq{SELECT string_agg(a.attempt || ':' || coalesce(a.status_code::text, '-') || ':' || coalesce(a.error, ''), ',' ORDER BY a.attempt)
           FROM subbilling.webhook_delivery_attempts a JOIN subbilling.webhook_deliveries d ON d.id = a.delivery_id
          WHERE d.endpoint_id = $eid}),
	'1:-:interrupted: the webhook worker exited during the attempt,2:200:', 'e: the interrupted attempt is recorded, the retry succeeded');
is(join(',', map { $_->{id} } grep { $_->{name} eq 'e' } requests()), "$crash,$crash", 'e: the same event twice (at least once)');

# the hanging endpoint meanwhile: timeouts recorded
ok($node->poll_query_until('postgres', qq{SELECT EXISTS (SELECT FROM subbilling.webhook_delivery_attempts a
            JOIN subbilling.webhook_deliveries d ON d.id = a.delivery_id
          WHERE d.endpoint_id = $ep{c} AND a.status_code IS NULL AND a.error ~* 'timed out' AND a.duration_ms >= 5000)}),
	'c: its attempts time out after subbilling.webhook_timeout');
is(sql("SELECT pending > 0 FROM subbilling.webhook_endpoint_status WHERE endpoint_id = $ep{c}"), 't',
	'webhook_endpoint_status: c has pending deliveries');

$node->stop('fast');
like(slurp_file($node->logfile), qr/subbilling webhooks worker started/, 'the webhook worker logged its start');
unlike(slurp_file($node->logfile), qr/TRAP|server process .* was terminated by signal/, 'no crash of a server process');
$receiver->kill_kill;
done_testing();
