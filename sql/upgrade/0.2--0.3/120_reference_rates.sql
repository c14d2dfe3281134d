
-- ---------------------------------------------------------------- rates confirmed from published sources
-- Sweden 2025H1: the referensränta is Riksbanken's effective policy rate at the
-- end of the previous half-year, rounded up to a half point; the cut to 2.50
-- decided in December 2024 applied from 8 January 2025, so 2.75 held on
-- 2024-12-31 and the rate is 3.00 (not 2.50).  Sources in docs/operations.md.
-- A row an operator has changed (its rate is not 0.2's 2.50) is left alone.
ALTER TABLE subbilling.reference_rates DISABLE TRIGGER reference_rates_shipped_row;
UPDATE subbilling.reference_rates
   SET rate = 3.00,
       source = 'Riksbanken referensränta 2025H1 (policy rate 2.75 at 2024-12-31: the cut to 2.50 applied from 2025-01-08)'
 WHERE country = 'SE' AND valid = '[2025-01-01,2025-07-01)' AND rate = 2.50
   AND origin IN ('shipped', 'edited');   -- 0.2's rows are all marked edited: 0.2 kept no record of changes
ALTER TABLE subbilling.reference_rates ENABLE TRIGGER reference_rates_shipped_row;
