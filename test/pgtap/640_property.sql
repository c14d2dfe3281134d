-- Property test: 10,000 random operations (deterministic seed) on invoices
-- issued through finalize_invoice and run_billing, fee invoices, payments
-- (partial, full, over, to paid and void invoices, unmatched, matched by
-- hand, repeated), credit notes (partial, whole, engine credit notes),
-- refunds, voids, failed automatic payments and retries.  Afterwards (and
-- every 2,500 operations) every journal entry balances and, for every
-- account, account_balance = open invoice amounts - customer credit, plus
-- the invariants below.  The setting subbilling_test.property_steps makes it
-- fewer (scripts/test.sh runs 2,500 on the versions it tests in chroots).
BEGIN;
-- The rows of this test live in its own transaction.  Autovacuum, cleaning up after the
-- earlier (rolled back) test files, would analyse the tables as empty meanwhile and overwrite
-- their row counts in place, and every later plan would be made for empty tables (a run that
-- took minutes instead of seconds): keep it off them while the test runs.
LOCK TABLE subbilling.accounts, subbilling.subscriptions, subbilling.subscription_items, subbilling.invoices,
           subbilling.invoice_lines, subbilling.journal_entries, subbilling.journal_lines, subbilling.events,
           subbilling.payments, subbilling.payment_requests
    IN SHARE UPDATE EXCLUSIVE MODE;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 600_fixture.psql
SET LOCAL subbilling.notify = off;

SELECT plan(14);

-- the number of steps: 10,000 unless subbilling_test.property_steps is set
CREATE FUNCTION pg_temp.steps() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('subbilling_test.property_steps', true), '')::integer, 10000)
$$;
SELECT diag('property test: ' || pg_temp.steps() || ' steps'
            || CASE WHEN pg_temp.steps() < 10000 THEN ' (reduced from 10000 by subbilling_test.property_steps)' ELSE '' END);

CREATE TEMP TABLE prop_log (step integer, check_name text, bad bigint);
CREATE TEMP TABLE prop_ops (op text PRIMARY KEY, n integer NOT NULL DEFAULT 0);

-- how many accounts break each invariant now
CREATE FUNCTION pg_temp.check_all(step integer) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO pg_temp.prop_log
    SELECT step, 'unbalanced entries', pg_temp.unbalanced()
    UNION ALL
    -- the property: balance = open items - credit
    SELECT step, 'balance <> open items - credit', count(*)
      FROM subbilling.accounts a
     WHERE a.external_id LIKE 'prop%'
       AND subbilling.account_balance(a.id)
           <> coalesce((SELECT sum(o.open_amount) FROM subbilling.open_items o WHERE o.account_id = a.id),
                       subbilling.price_minor(0, a.currency)) - subbilling.customer_credit(a.id)
    UNION ALL
    -- independently of the journal: balance = issued documents - payments + refunds
    SELECT step, 'balance <> documents - payments + refunds', count(*)
      FROM subbilling.accounts a
     WHERE a.external_id LIKE 'prop%'
       AND subbilling.account_balance(a.id)
           <> coalesce((SELECT sum(i.total) FROM subbilling.invoices i
                         WHERE i.account_id = a.id AND i.status NOT IN ('draft', 'void')), subbilling.price_minor(0, a.currency))
            - coalesce((SELECT sum(p.amount) FROM subbilling.payments p WHERE p.account_id = a.id), subbilling.price_minor(0, a.currency))
            + coalesce((SELECT sum(r.amount) FROM subbilling.refunds r WHERE r.account_id = a.id), subbilling.price_minor(0, a.currency))
    UNION ALL
    SELECT step, 'bank <> payments - refunds', count(*)
      FROM subbilling.accounts a
     WHERE a.external_id LIKE 'prop%'
       AND coalesce((SELECT sum(l.amount) FROM subbilling.journal_lines l WHERE l.account_id = a.id AND l.ledger_code = '1930'),
                    subbilling.price_minor(0, a.currency))
           <> coalesce((SELECT sum(p.amount) FROM subbilling.payments p WHERE p.account_id = a.id), subbilling.price_minor(0, a.currency))
            - coalesce((SELECT sum(r.amount) FROM subbilling.refunds r WHERE r.account_id = a.id), subbilling.price_minor(0, a.currency))
    UNION ALL
    SELECT step, 'negative customer credit', count(*)
      FROM subbilling.accounts a
     WHERE a.external_id LIKE 'prop%' AND subbilling.minor_units(subbilling.customer_credit(a.id)) < 0
    UNION ALL
    SELECT step, 'open amount outside 0 .. uncredited total', count(*)
      FROM subbilling.invoices i
     WHERE i.status <> 'draft'
       AND (subbilling.minor_units(subbilling.invoice_open_amount(i.account_id, i.id)) < 0
            OR (i.kind = 'invoice' AND subbilling.invoice_open_amount(i.account_id, i.id) > subbilling_internal.invoice_uncredited(i))
            OR (i.kind = 'credit_note' AND subbilling.minor_units(subbilling.invoice_open_amount(i.account_id, i.id)) <> 0)
            OR (i.status = 'void' AND subbilling.minor_units(subbilling.invoice_open_amount(i.account_id, i.id)) <> 0))
    UNION ALL
    SELECT step, 'status paid <> nothing open', count(*)
      FROM subbilling.invoices i
     WHERE i.kind = 'invoice' AND i.status IN ('open', 'paid')
       AND (i.status = 'paid') <> (subbilling.minor_units(subbilling.invoice_open_amount(i.account_id, i.id)) = 0)
    UNION ALL
    SELECT step, 'issued documents not booked once', count(*)
      FROM subbilling.invoices i
     WHERE i.status <> 'draft' AND subbilling.minor_units(i.total) <> 0
       AND (SELECT count(*) FROM subbilling.journal_entries e
             WHERE e.account_id = i.account_id AND e.invoice_id = i.id AND e.kind IN ('invoice', 'credit_note')) <> 1
    UNION ALL
    SELECT step, 'active request on a settled invoice', count(*)
      FROM subbilling.payment_requests r
      JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
     WHERE (r.status = 'requested' OR r.next_attempt_on IS NOT NULL) AND i.status NOT IN ('open', 'uncollectible');
END $$;

CREATE FUNCTION pg_temp.tick(op text) RETURNS void LANGUAGE sql VOLATILE AS $$
    INSERT INTO pg_temp.prop_ops VALUES (op, 1) ON CONFLICT (op) DO UPDATE SET n = pg_temp.prop_ops.n + 1;
$$;

-- a random amount between lo and hi minor units
CREATE FUNCTION pg_temp.rnd(lo bigint, hi bigint) RETURNS bigint LANGUAGE sql VOLATILE
RETURN lo + floor(random() * (hi - lo + 1))::bigint;

DO $prop$
DECLARE
    accs        bigint[];
    curs        text[];
    invs        bigint[] := '{}';       -- issued invoices and credit notes
    pays        bigint[] := '{}';       -- payment ids returned by register_payment
    pay_ext     text[] := '{}';         -- and how to repeat them
    pay_amt     subbilling.price[] := '{}';
    pay_ref     text[] := '{}';
    pay_on      date[] := '{}';
    products    text[] := ARRAY['p_saas', 'p_food', 'p_book', 'p_free'];
    today       date := '2024-01-01';
    billed_to   date := '2024-01-01';
    k           integer;
    r           double precision;
    acc         bigint;
    cur         text;
    iid         bigint;
    inv         subbilling.invoices;
    open_       subbilling.price;
    amt         subbilling.price;
    pid         bigint;
    nlines      integer;
    ext         text;
    before      bigint;
    ids         bigint[];
    aids        bigint[];
BEGIN
    PERFORM setseed(0.4242);
    -- 100 accounts: SEK, a few EUR and NOK, some paying by card or autogiro
    FOR k IN 1 .. 100 LOOP
        acc := pg_temp.account('prop' || k, CASE WHEN k % 10 = 3 THEN 'FI' WHEN k % 10 = 7 THEN 'NO' ELSE 'SE' END,
                               CASE WHEN k % 10 = 3 THEN 'EUR' WHEN k % 10 = 7 THEN 'NOK' ELSE 'SEK' END, k % 13 = 5);
        accs := accs || acc;
        curs := curs || (SELECT currency FROM subbilling.accounts WHERE id = acc);
        IF k % 4 = 0 THEN
            INSERT INTO subbilling.payment_methods (account_id, kind, is_default)
            VALUES (acc, CASE WHEN k % 8 = 0 THEN 'card' ELSE 'autogiro' END, true);
        END IF;
        -- a monthly subscription on the SEK accounts, billed by run_billing
        IF curs[k] = 'SEK' AND k % 3 = 0 THEN
            PERFORM subbilling.subscribe(acc, 'pl_saas', 1 + k % 3, '2024-01-01');
        END IF;
    END LOOP;

    FOR step IN 1 .. pg_temp.steps() LOOP
        IF step % 20 = 0 THEN
            today := today + 1;
        END IF;
        r := random();
        k := 1 + floor(random() * cardinality(accs))::integer;
        acc := accs[k];
        cur := curs[k];

        IF r < 0.22 OR cardinality(invs) < 5 THEN
            -- an invoice through the finalize path: 1-3 lines, now and then a fee
            -- invoice or a negative one (an engine credit note)
            INSERT INTO subbilling.invoices (account_id, currency, net, tax, total, issue_date)
            VALUES (acc, cur, subbilling.price_minor(0, cur), subbilling.price_minor(0, cur), subbilling.price_minor(0, cur), today)
            RETURNING id INTO iid;
            nlines := 1 + floor(random() * 3)::integer;
            INSERT INTO subbilling.invoice_lines (account_id, invoice_id, plan_id, kind, description, quantity, unit_price,
                                                  net, tax_rate, tax)
            SELECT acc, iid, pl.id, CASE WHEN p.id IS NULL THEN 'fee' ELSE 'recurring' END, 'line', 1, x.net, x.net, x.rate,
                   subbilling.tax(x.net, x.rate)
              FROM (SELECT CASE WHEN random() < 0.05 THEN NULL ELSE products[1 + floor(random() * 4)::integer] END AS product,
                           subbilling.price_minor(pg_temp.rnd(100, 99999) * CASE WHEN random() < 0.06 THEN -1 ELSE 1 END, cur) AS net0
                      FROM generate_series(1, nlines)) q
              LEFT JOIN subbilling.products p ON p.code = q.product
              LEFT JOIN subbilling.plans pl ON pl.product_id = p.id
             CROSS JOIN LATERAL (SELECT q.net0 AS net,
                                        CASE WHEN p.id IS NULL OR (SELECT tax_exempt FROM subbilling.accounts WHERE id = acc) THEN 0
                                             ELSE p.tax_rate END AS rate) x;
            PERFORM subbilling.finalize_invoice(iid);
            PERFORM subbilling_internal.book_invoices(ARRAY[acc], ARRAY[iid]);
            invs := invs || iid;
            PERFORM pg_temp.tick('invoice (finalize_invoice)');

        ELSIF r < 0.24 THEN
            -- the engine: bill every subscription up to today
            IF today > billed_to THEN
                billed_to := today;
                PERFORM subbilling.run_billing(today::timestamptz);
                SELECT array_agg(i.account_id), array_agg(i.id) INTO aids, ids
                  FROM subbilling.invoices i WHERE i.as_of = today::timestamptz;
                IF ids IS NOT NULL THEN
                    PERFORM subbilling_internal.book_invoices(aids, ids);
                    invs := invs || ids;
                END IF;
                PERFORM pg_temp.tick('run_billing');
            END IF;

        ELSIF r < 0.56 THEN
            -- a payment by reference: partial, exact or over, now and then by
            -- card; mostly on an invoice with something open
            FOR attempt IN 1 .. CASE WHEN random() < 0.15 THEN 1 ELSE 4 END LOOP
                iid := invs[1 + floor(random() * cardinality(invs))::integer];
                SELECT * INTO inv FROM subbilling.invoices WHERE id = iid;
                open_ := subbilling.invoice_open_amount(inv.account_id, inv.id);
                EXIT WHEN subbilling.minor_units(open_) > 0;
            END LOOP;
            amt := CASE WHEN subbilling.minor_units(open_) <= 0 OR random() < 0.1
                        THEN subbilling.price_minor(pg_temp.rnd(1, 20000), inv.currency)
                        WHEN random() < 0.4 THEN open_
                        WHEN random() < 0.5 THEN subbilling.price_minor(pg_temp.rnd(1, subbilling.minor_units(open_)), inv.currency)
                        ELSE open_ + subbilling.price_minor(pg_temp.rnd(1, 50000), inv.currency) END;
            ext := CASE WHEN random() < 0.7 THEN 'prop-' || step END;
            pid := subbilling.register_payment(amt, inv.reference, today,
                                               CASE WHEN random() < 0.2 THEN 'card' ELSE 'bankgiro' END, ext);
            pays := pays || pid; pay_ext := pay_ext || ext; pay_amt := pay_amt || amt;
            pay_ref := pay_ref || inv.reference; pay_on := pay_on || today;
            PERFORM pg_temp.tick(CASE WHEN inv.kind = 'credit_note' THEN 'payment (credit note reference)'
                                      WHEN inv.status = 'void' THEN 'payment (void invoice)'
                                      WHEN subbilling.minor_units(open_) <= 0 THEN 'payment (nothing open)'
                                      WHEN amt < open_ THEN 'payment (partial)' WHEN amt = open_ THEN 'payment (full)'
                                      ELSE 'payment (over)' END);

        ELSIF r < 0.59 THEN
            -- a payment nobody can match
            amt := subbilling.price_minor(pg_temp.rnd(1, 30000), cur);
            pid := subbilling.register_payment(amt, CASE WHEN random() < 0.5 THEN '9' || pg_temp.rnd(1000, 99999999)
                                                         WHEN random() < 0.5 THEN 'ref ' || step END,
                                               today, 'bankgiro', 'prop-u-' || step);
            pays := pays || pid; pay_ext := pay_ext || ('prop-u-' || step); pay_amt := pay_amt || amt;
            pay_ref := pay_ref || (SELECT reference FROM subbilling.unmatched_payments WHERE id = pid); pay_on := pay_on || today;
            PERFORM pg_temp.tick('payment (unmatched)');

        ELSIF r < 0.62 THEN
            -- settle an open unmatched payment by hand onto an invoice in its currency
            SELECT u.id INTO pid FROM subbilling.unmatched_payments u WHERE u.status = 'open' ORDER BY random() LIMIT 1;
            iid := invs[cardinality(invs) - floor(random() * least(cardinality(invs), 50))::integer];
            PERFORM FROM subbilling.invoices i, subbilling.unmatched_payments u
              WHERE i.id = iid AND u.id = pid AND i.kind = 'invoice' AND i.currency = subbilling.currency(u.amount);
            IF FOUND THEN
                PERFORM subbilling.match_payment(pid, iid);
                PERFORM pg_temp.tick('match_payment');
            END IF;

        ELSIF r < 0.64 THEN
            -- a repeated bank message: same id, nothing written
            k := 1 + floor(random() * greatest(cardinality(pays), 1))::integer;
            IF cardinality(pays) > 0 AND pay_ext[k] IS NOT NULL THEN
                -- no id drawn = nothing written
                before := (SELECT last_value FROM subbilling.journal_lines_id_seq) + (SELECT last_value FROM subbilling.payment_id_seq);
                IF subbilling.register_payment(pay_amt[k], pay_ref[k], pay_on[k], 'bankgiro', pay_ext[k]) <> pays[k]
                   OR before <> (SELECT last_value FROM subbilling.journal_lines_id_seq) + (SELECT last_value FROM subbilling.payment_id_seq) THEN
                    RAISE EXCEPTION 'a repeated payment % was not idempotent', pay_ext[k];
                END IF;
                PERFORM pg_temp.tick('payment (repeated)');
            END IF;

        ELSIF r < 0.74 THEN
            -- a credit note: the rest, or a part
            iid := invs[1 + floor(random() * cardinality(invs))::integer];
            SELECT * INTO inv FROM subbilling.invoices WHERE id = iid;
            IF inv.kind = 'invoice' AND inv.status IN ('open', 'paid', 'uncollectible')
               AND subbilling.minor_units(subbilling_internal.invoice_uncredited(inv)) > 0 THEN
                amt := CASE WHEN random() < 0.3 THEN NULL
                            ELSE subbilling.price_minor(pg_temp.rnd(1, subbilling.minor_units(subbilling_internal.invoice_uncredited(inv))), inv.currency) END;
                iid := subbilling.credit_invoice(inv.id, amt, 'property test');
                PERFORM subbilling_internal.book_invoices(ARRAY[inv.account_id], ARRAY[iid]);
                invs := invs || iid;
                PERFORM pg_temp.tick(CASE WHEN amt IS NULL THEN 'credit note (rest)' ELSE 'credit note (part)' END);
            END IF;

        ELSIF r < 0.86 THEN
            -- a refund of a random amount of a random payment; more than refundable is refused
            k := 1 + floor(random() * greatest(cardinality(pays), 1))::integer;
            IF cardinality(pays) > 0 THEN
                amt := CASE WHEN random() < 0.3 THEN pay_amt[k]
                            ELSE subbilling.price_minor(pg_temp.rnd(1, subbilling.minor_units(pay_amt[k])), subbilling.currency(pay_amt[k])) END;
                BEGIN
                    PERFORM subbilling.refund(pays[k], amt);
                    PERFORM pg_temp.tick('refund');
                EXCEPTION WHEN invalid_parameter_value OR object_not_in_prerequisite_state THEN
                    PERFORM pg_temp.tick('refund (refused)');
                END;
            END IF;

        ELSIF r < 0.90 THEN
            -- void an open invoice (refused when it has credit notes or is not open)
            iid := invs[1 + floor(random() * cardinality(invs))::integer];
            IF (SELECT kind FROM subbilling.invoices WHERE id = iid) = 'invoice' THEN
                BEGIN
                    PERFORM subbilling.void_invoice(iid, 'property test');
                    PERFORM subbilling_internal.book_invoices(ARRAY[(SELECT account_id FROM subbilling.invoices WHERE id = iid)], ARRAY[iid]);
                    PERFORM pg_temp.tick('void');
                EXCEPTION WHEN object_not_in_prerequisite_state THEN
                    PERFORM pg_temp.tick('void (refused)');
                END;
            END IF;

        ELSIF r < 0.96 THEN
            -- an automatic payment failed
            SELECT r2.id INTO pid FROM subbilling.payment_requests r2 WHERE r2.status = 'requested' ORDER BY random() LIMIT 1;
            IF FOUND THEN
                PERFORM subbilling.payment_failed(pid, 'declined', today);
                PERFORM pg_temp.tick('payment_failed');
            END IF;

        ELSE
            PERFORM subbilling.run_payment_retries(today);
            PERFORM pg_temp.tick('run_payment_retries');
        END IF;

        IF step % 2500 = 0 THEN
            PERFORM pg_temp.check_all(step);
        END IF;
        -- The rows are made in the test's own transaction, where autovacuum never sees
        -- them: without fresh statistics every lookup is planned for empty tables and the
        -- run grows quadratically (minutes instead of seconds at 10,000 steps).
        IF step % 500 = 0 THEN
            ANALYZE subbilling.invoices, subbilling.invoice_lines, subbilling.payments,
                    subbilling.journal_entries, subbilling.journal_lines,
                    subbilling.payment_requests, subbilling.refunds, subbilling.events;
        END IF;
    END LOOP;
END
$prop$;

SELECT is((SELECT sum(n) FROM prop_ops WHERE op NOT IN ('run_billing', 'run_payment_retries') OR true)::bigint >= pg_temp.steps() * 9 / 10, true,
          'most of the ' || pg_temp.steps() || ' steps did something');
SELECT ok((SELECT bool_and(n >= 20 * pg_temp.steps() / 10000) FROM prop_ops
            WHERE op IN ('invoice (finalize_invoice)', 'run_billing', 'payment (partial)', 'payment (full)', 'payment (over)',
                         'payment (nothing open)', 'payment (unmatched)', 'match_payment', 'payment (repeated)',
                         'credit note (rest)', 'credit note (part)', 'refund', 'refund (refused)', 'void', 'payment_failed'))
          AND (SELECT count(*) FROM prop_ops
                WHERE op IN ('invoice (finalize_invoice)', 'run_billing', 'payment (partial)', 'payment (full)', 'payment (over)',
                             'payment (nothing open)', 'payment (unmatched)', 'match_payment', 'payment (repeated)',
                             'credit note (rest)', 'credit note (part)', 'refund', 'refund (refused)', 'void', 'payment_failed')) = 15,
          'every kind of operation happened at least ' || 20 * pg_temp.steps() / 10000 || ' times: ' || (SELECT string_agg(op || ' ' || n, ', ' ORDER BY op) FROM prop_ops));
SELECT ok((SELECT count(*) FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.external_id LIKE 'prop%' AND i.kind = 'credit_note' AND i.credits_invoice_id IS NULL) > 0
          AND (SELECT count(*) FROM invoice_lines l JOIN accounts a ON a.id = l.account_id WHERE a.external_id LIKE 'prop%' AND l.kind = 'fee') > 0
          AND (SELECT count(*) FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.external_id LIKE 'prop%' AND i.as_of IS NOT NULL) > 0,
          'among them engine credit notes, fee lines and engine invoices');
SELECT ok((SELECT count(*) FROM payment_requests r JOIN accounts a ON a.id = r.account_id WHERE a.external_id LIKE 'prop%' AND r.status = 'succeeded') > 0
          AND (SELECT count(*) FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.external_id LIKE 'prop%' AND i.status = 'paid') > 0
          AND (SELECT count(*) FROM open_items o JOIN accounts a ON a.id = o.account_id WHERE a.external_id LIKE 'prop%') > 0
          AND (SELECT count(*) FROM accounts a WHERE a.external_id LIKE 'prop%' AND minor_units(customer_credit(a.id)) > 0) > 0,
          'and the end state has succeeded requests, paid and open invoices, accounts in credit');

SELECT pg_temp.check_all(pg_temp.steps() + 1);
SELECT results_eq($$ SELECT check_name, sum(bad) FROM prop_log GROUP BY check_name ORDER BY check_name $$,
    $$ VALUES ('active request on a settled invoice', 0::numeric), ('balance <> documents - payments + refunds', 0),
              ('balance <> open items - credit', 0), ('bank <> payments - refunds', 0),
              ('issued documents not booked once', 0), ('negative customer credit', 0),
              ('open amount outside 0 .. uncredited total', 0), ('status paid <> nothing open', 0),
              ('unbalanced entries', 0) $$,
    'after every 2,500 steps and at the end, no invariant is broken');
SELECT is((SELECT count(DISTINCT step) FROM prop_log), pg_temp.steps() / 2500 + 1::bigint,
          'checked ' || pg_temp.steps() / 2500 + 1 || ' times');
SELECT is(pg_temp.unbalanced(), 0::bigint, 'every journal entry balances');
SELECT is((SELECT count(*) FROM accounts a WHERE a.external_id LIKE 'prop%'
             AND account_balance(a.id) <> coalesce((SELECT sum(o.open_amount) FROM open_items o WHERE o.account_id = a.id),
                                                   price_minor(0, a.currency)) - customer_credit(a.id)),
          0::bigint, 'for every account: account_balance = open invoice amounts - customer credit');
SELECT cmp_ok((SELECT count(*) FROM journal_entries e JOIN accounts a ON a.id = e.account_id WHERE a.external_id LIKE 'prop%'), '>', pg_temp.steps() * 7 / 10::bigint,
          'more than ' || pg_temp.steps() * 7 / 10 || ' entries were booked');
SELECT diag('operations: ' || (SELECT string_agg(op || ' ' || n, ', ' ORDER BY op) FROM prop_ops));
SELECT diag('entries: ' || (SELECT string_agg(kind || ' ' || n, ', ' ORDER BY kind)
                              FROM (SELECT kind, count(*) AS n FROM journal_entries GROUP BY kind) q));
SELECT is((SELECT count(*) FROM (SELECT account_id, sum(debit) - sum(credit) AS s FROM customer_ledger GROUP BY account_id) q
             JOIN account_balances b USING (account_id) WHERE q.s <> b.balance), 0::bigint,
          'every customer ledger sums to the account''s balance');
SELECT is((SELECT count(*) FROM (SELECT account_id, balance, row_number() OVER (PARTITION BY account_id ORDER BY booked_on DESC, entry_id DESC) AS rn
                                   FROM customer_ledger) q JOIN account_balances b USING (account_id)
            WHERE q.rn = 1 AND q.balance <> b.balance), 0::bigint,
          'and its running balance ends there');
SELECT is((SELECT count(*) FROM journal_lines l WHERE l.subledger = 'receivables' AND l.ledger_code <> '1510')
          + (SELECT count(*) FROM journal_lines l WHERE l.subledger = 'customer_credit' AND l.ledger_code <> '2420')
          + (SELECT count(*) FROM journal_lines l WHERE l.subledger IS NULL AND l.ledger_code IN ('1510', '2420')), 0::bigint,
          'receivables lines are on 1510, customer credit on 2420, and nothing else is');
SELECT is((SELECT count(*) FROM unmatched_payments WHERE status = 'matched' AND id NOT IN (SELECT id FROM payments)), 0::bigint,
          'every matched queue row is a payment with its id');
SELECT is((SELECT count(*) FROM payments p WHERE p.external_id IS NOT NULL
             AND (SELECT count(*) FROM payments q WHERE q.external_id = p.external_id) > 1), 0::bigint,
          'no external_id was booked twice');

SELECT * FROM finish();
ROLLBACK;
