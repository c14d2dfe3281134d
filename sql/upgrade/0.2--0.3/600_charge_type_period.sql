-- One meaning of recurring: an invoice line's kind recurring is a whole period's charge;
-- the charge key's type for the items' period charges (recurring, proration and addon lines)
-- was also called recurring and is now period.  Lines already issued are renamed in place
-- (their guard trigger is off for this one statement: nothing else of them changes), so that
-- billing matches them to their keys as before.
ALTER TABLE subbilling.invoice_lines DROP CONSTRAINT invoice_lines_charge_type_check;
ALTER TABLE subbilling.invoice_lines DISABLE TRIGGER invoice_lines_guard;
UPDATE subbilling.invoice_lines SET charge_type = 'period' WHERE charge_type = 'recurring';
ALTER TABLE subbilling.invoice_lines ENABLE TRIGGER invoice_lines_guard;
ALTER TABLE subbilling.invoice_lines ADD CONSTRAINT invoice_lines_charge_type_check
    CHECK (charge_type IN ('period', 'usage', 'setup', 'discount'));
COMMENT ON COLUMN subbilling.invoice_lines.charge_type IS 'the charge key''s type: period (the items'' charge for a billing period: lines of kind recurring, proration or addon), usage, setup, discount; called recurring before 0.3';
