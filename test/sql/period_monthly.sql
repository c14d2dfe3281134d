-- monthly(price, billing_period): the MRR normalisation
SET search_path = subbilling, public;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- months: price / months; weeks: price * 52 / (12 * weeks); days: price * 365 / (12 * days)
SELECT price, p::billing_period AS period, periods_per_year(p::billing_period),
       monthly(price::price, p::billing_period)
  FROM (VALUES ('1200.00 SEK', 'yearly'), ('1200.00 SEK', 'monthly'), ('99.00 SEK', 'quarterly'),
               ('100.00 SEK', 'quarterly'), ('600.00 SEK', 'semiannually'), ('2400.00 SEK', '2 years'),
               ('10.00 SEK', 'weekly'), ('10.00 SEK', '2 weeks'), ('1.00 SEK', 'daily'),
               ('1.00 SEK', '10 days'), ('0.05 EUR', '7 months'), ('-1200.00 SEK', 'yearly'),
               ('-0.10 EUR', '3 months'), ('1000 JPY', 'quarterly'), ('1.000 KWD', '3 months'),
               ('0.00 SEK', 'monthly')) AS t(price, p);

-- rounding: half away from zero (0.05 / 2 = 0.025 -> 0.03; -0.05 / 2 -> -0.03)
SELECT monthly('0.05 EUR', '2 months') AS up, monthly('-0.05 EUR', '2 months') AS down,
       monthly('0.01 EUR', '3 months') AS small, monthly('0.02 EUR', '3 months') AS rounds_up;

-- largest and smallest amounts: no overflow (the result is never larger than the price for
-- months; days and weeks can be up to 365/12 times larger)
SELECT monthly('92233720368547758.07 EUR', 'monthly') AS max_monthly;
SELECT pg_temp.try($$SELECT subbilling.monthly('92233720368547758.07 EUR', 'daily')$$) AS max_daily;
SELECT monthly('-92233720368547758.08 EUR', '1000 years') AS min_millennium;

SELECT monthly(NULL, 'monthly') IS NULL AS a, monthly('1.00 SEK', NULL) IS NULL AS b;
