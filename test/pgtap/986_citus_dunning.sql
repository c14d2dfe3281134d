-- Dunning by shard group (the path dunning_batch takes on Citus: dunning_batch_citus and
-- dunning_accounts_citus), run here on a single server as one group: it does exactly what the
-- set-based batch does (actions, fee invoices and their numbers, journal, suspensions, events),
-- ids aside; ids from the pools drawn by the batch; the per-invoice fallback into
-- billing_errors.  The Citus tier (test/citus.sh, block cdun) runs it on a real cluster.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;

SELECT plan(12);

INSERT INTO products (code, name, tax_rate) VALUES ('cd', 'CD service', 25);
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT 'cd-monthly', id, 'CD monthly', '1 month', 'flat', '100.00 SEK' FROM products WHERE code = 'cd';
INSERT INTO dunning_policies (code, name) VALUES ('cd', 'Every kind of step');
INSERT INTO dunning_steps (policy_id, step_no, days_after_due, action, fee_kind, fees, charge_interest)
SELECT p.id, v.n, v.d, v.a, v.k, v.f::price[], v.i FROM dunning_policies p, (VALUES
    (1, 5, 'reminder', 'fixed', '{"60.00 SEK"}', false), (2, 15, 'reminder', 'country', NULL, true),
    (3, 25, 'payment_stop', 'none', NULL, false), (4, 35, 'collection', 'none', NULL, true),
    (5, 50, 'write_off', 'none', NULL, false)) AS v(n, d, a, k, f, i)
 WHERE p.code = 'cd';
INSERT INTO accounts (name, country, currency, dunning_policy_id)
SELECT 'CD ' || g, 'SE', 'SEK', (SELECT id FROM dunning_policies WHERE code = 'cd') FROM generate_series(1, 5) g;
SELECT subscribe(a.id, 'cd-monthly', 1 + substr(a.name, 4)::int % 3, current_date - 40)
  FROM accounts a WHERE a.name LIKE 'CD %' ORDER BY a.name;
SELECT run_billing(now());
-- one invoice partly paid: less to dun; one paid in full: nothing to dun
SELECT register_payment('100.00 SEK', i.reference, current_date, 'bankgiro', 'cd-part')
  FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.name = 'CD 2';
SELECT register_payment(i.total, i.reference, current_date, 'bankgiro', 'cd-full')
  FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.name = 'CD 4';

-- what dunning leaves behind, ids aside
CREATE FUNCTION pg_temp.digest() RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(E'\n',
        (SELECT string_agg(concat_ws(' ', a.name, d.step_no, d.action, d.executed_on, d.days_after_due, d.open_amount,
                                     d.fee, d.fee_note, d.interest, d.interest_period, d.written_off,
                                     d.subscription_id IS NOT NULL, f.number, f.total, f.status, f.due_date,
                                     (SELECT string_agg(concat_ws(' ', l.kind, l.description, l.net), '; ' ORDER BY l.id)
                                        FROM invoice_lines l WHERE l.account_id = f.account_id AND l.invoice_id = f.id),
                                     (SELECT string_agg(concat_ws(' ', e.kind, e.booked_on, e.memo, jl.ledger_code, jl.amount),
                                                        '; ' ORDER BY e.id, jl.id)
                                        FROM journal_entries e JOIN journal_lines jl ON jl.account_id = e.account_id AND jl.entry_id = e.id
                                       WHERE e.account_id = f.account_id AND e.invoice_id = f.id)),
                           E'\n' ORDER BY a.name, d.step_no)
           FROM dunning_actions d JOIN accounts a ON a.id = d.account_id
           LEFT JOIN invoices f ON f.account_id = d.account_id AND f.id = d.fee_invoice_id),
        (SELECT string_agg(concat_ws(' ', a.name, s.status, u.suspended_from, u.lifted_on), E'\n' ORDER BY a.name)
           FROM subscriptions s JOIN accounts a ON a.id = s.account_id
           LEFT JOIN subscription_suspensions u ON u.account_id = s.account_id AND u.subscription_id = s.id),
        (SELECT string_agg(concat_ws(' ', a.name, i.number, i.status), E'\n' ORDER BY i.number)
           FROM invoices i JOIN accounts a ON a.id = i.account_id),
        (SELECT string_agg(concat_ws(' ', e.kind, e.booked_on, e.memo, jl.ledger_code, jl.amount), E'\n' ORDER BY e.booked_on, e.memo, jl.ledger_code, jl.amount)
           FROM journal_entries e JOIN journal_lines jl ON jl.account_id = e.account_id AND jl.entry_id = e.id
          WHERE e.kind IN ('write_off', 'interest')),
        (SELECT string_agg(t.type || ' ' || t.n, ', ' ORDER BY t.type)
           FROM (SELECT e.type, count(*) AS n FROM events e GROUP BY e.type) t),
        (SELECT string_agg(ct.next_number::text, ',' ORDER BY ct.series_id) FROM invoice_counters ct),
        (SELECT count(*) FROM billing_errors)::text)
$$;

SAVEPOINT before_dunning;
-- a run per step: each is due some days after the step before it was taken
SELECT run_dunning(current_date + 45) AS s1 \gset
SELECT run_dunning(current_date + 100) AS s2 \gset
SELECT run_dunning(current_date + 110) AS s3 \gset
SELECT run_dunning(current_date + 120) AS s4 \gset
SELECT run_dunning(current_date + 135) AS s5 \gset
SELECT pg_temp.digest() AS single \gset
SELECT ok(:'single' ~ 'dunning.write_off 4' AND :'single' ~ 'subscription.suspended 4' AND :'single' ~ 'dunning.reminder 8',
          'set-based: four invoices dunned to the write-off (one was paid), their subscriptions suspended, two reminders each');
ROLLBACK TO SAVEPOINT before_dunning;

-- the same runs by shard group, as on Citus (one group here)
SELECT set_config('subbilling_internal.on_citus', 'true', true);
SELECT coalesce(max(id), 0) AS ev0 FROM events \gset
SELECT is(run_dunning(current_date + 45) || ',' || run_dunning(current_date + 100) || ',' || run_dunning(current_date + 110)
          || ',' || run_dunning(current_date + 120) || ',' || run_dunning(current_date + 135),
          :'s1' || ',' || :'s2' || ',' || :'s3' || ',' || :'s4' || ',' || :'s5',
          'by shard group: the same steps in each run as set-based');
SELECT is(pg_temp.digest(), :'single',
          'by shard group: the same actions, fee invoices and numbers, journal, suspensions, events and counters');
SELECT is(run_dunning(current_date + 135), 0, 'a second run takes nothing');
SELECT is((SELECT count(*) FROM billing_errors), 0::bigint, 'no dunning errors');
SELECT is((SELECT array_agg(id) FROM events_after(:ev0, 100000)), (SELECT array_agg(id ORDER BY id) FROM events WHERE id > :ev0),
          'events_after hands out every event of the runs, in id order');
SELECT is((SELECT count(*) FROM (SELECT i.series_id FROM invoices i JOIN invoice_counters c ON c.series_id = i.series_id
                                  GROUP BY i.series_id, c.next_number
                                 HAVING count(*) <> count(DISTINCT i.number_seq) OR max(i.number_seq) <> count(*)
                                     OR c.next_number <> max(i.number_seq) + 1) q), 0::bigint,
          'every series gapless from 1, its counter after the last');
SELECT is(current_setting('subbilling_internal.ids_events', true), '', 'the pools closed after the call');

-- the per-invoice fallback: one invoice's step refused, the others taken, the error recorded
-- against the invoice, retried (and resolved) on a later date
SELECT set_config('subbilling_internal.on_citus', 'false', true);
INSERT INTO accounts (name, country, currency, dunning_policy_id)
SELECT 'CE ' || g, 'SE', 'SEK', (SELECT id FROM dunning_policies WHERE code = 'cd') FROM generate_series(1, 3) g;
WITH ins AS (
    INSERT INTO invoices (account_id, currency, net, tax, total, issue_date, due_date)
    SELECT id, 'SEK', '0 SEK', '0 SEK', '0 SEK', current_date, current_date + 97 FROM accounts WHERE name LIKE 'CE %'
    RETURNING account_id, id)
INSERT INTO invoice_lines (account_id, invoice_id, kind, description, net, tax_rate, tax)
SELECT account_id, id, 'setup', 'Setup', '80.00 SEK', 25, '20.00 SEK' FROM ins;
SELECT finalize_invoice(i.id) FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.name LIKE 'CE %' ORDER BY a.name;
SELECT set_config('subbilling_internal.on_citus', 'true', true);
CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.account_id = (SELECT id FROM subbilling.accounts WHERE name = 'CE 2') THEN
        RAISE EXCEPTION 'refused for the test' USING ERRCODE = 'SBT42';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse BEFORE INSERT ON dunning_actions FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();
SELECT is(b.steps || '/' || b.errors, '2/1', 'a refused invoice: the two others dunned, one error')
  FROM run_dunning_batch(10, current_date + 100) b;
SELECT is((SELECT e.sqlstate || ' ' || e.message || ' ' || (e.subscription_id IS NULL) FROM billing_errors e
            JOIN accounts a ON a.id = e.account_id WHERE a.name = 'CE 2'),
          'SBT42 refused for the test true', 'the error recorded against the invoice');
DROP TRIGGER refuse ON dunning_actions;
SELECT is(b.steps || '/' || b.errors, '1/0', 'retried on the next date: dunned')
  FROM run_dunning_batch(10, current_date + 101) b;
SELECT is((SELECT count(*) FROM billing_errors WHERE resolved_at IS NULL), 0::bigint, '... and the error resolved');

SELECT * FROM finish();
ROLLBACK;
