-- The demo ends with the KPI views a BI tool reads as subbilling_reader: MRR and
-- its movements over the last 12 months, churn, revenue recognition, receivables
-- aging; and MRR over 12 months drawn to build/demo/mrr.png with gnuplot.
SET search_path = subbilling, public;

\echo
\echo '== KPIs: what a BI tool reads as subbilling_reader (docs/kpis.md)'
SET ROLE subbilling_reader;
SELECT month, currency, mrr, arr, active_customers, active_subscriptions
  FROM kpi_mrr WHERE month = date_trunc('month', current_date) ORDER BY currency;
SELECT month, currency, start_mrr, new_mrr, expansion_mrr, reactivation_mrr, contraction_mrr, churned_mrr, end_mrr
  FROM kpi_mrr_movements WHERE month > date_trunc('month', current_date) - interval '12 months'
   AND end_mrr + start_mrr > 0 ORDER BY currency, month;
SELECT month, currency, customers_start, churned_customers, round(logo_churn, 4) AS logo_churn,
       round(net_revenue_retention, 4) AS nrr
  FROM kpi_churn WHERE month > date_trunc('month', current_date) - interval '3 months' ORDER BY currency, month;
SELECT month, currency, opening_deferred, billed, recognised, closing_deferred
  FROM revenue_recognition WHERE month BETWEEN date_trunc('month', current_date) - interval '2 months'
                                          AND date_trunc('month', current_date) + interval '2 months'
 ORDER BY currency, month;
SELECT currency, sum(current) AS current, sum(overdue_1_30) AS overdue_1_30, sum(overdue_31_60) AS overdue_31_60,
       sum(overdue_61_90) AS overdue_61_90, sum(overdue_90_plus) AS overdue_90_plus
  FROM ar_aging GROUP BY currency ORDER BY currency;
RESET ROLE;

-- MRR of the last 12 months, one column per currency, to a data file for gnuplot
\! mkdir -p build/demo
\pset format unaligned
\pset tuples_only on
\pset fieldsep ' '
\o build/demo/mrr.dat
SELECT to_char(m, 'YYYY-MM'),
       coalesce((SELECT mrr FROM kpi_mrr WHERE month = m AND currency = 'SEK'), 0),
       coalesce((SELECT mrr FROM kpi_mrr WHERE month = m AND currency = 'EUR'), 0),
       coalesce((SELECT mrr FROM kpi_mrr WHERE month = m AND currency = 'NOK'), 0)
  FROM generate_series(date_trunc('month', current_date) - interval '11 months', date_trunc('month', current_date),
                       interval '1 month') AS m;
\o
\pset format aligned
\pset tuples_only off
\! gnuplot -e "set terminal pngcairo size 900,420 font ',10'; set output 'build/demo/mrr.png'; set title 'MRR over 12 months (kpi\_mrr, per currency, never converted)'; set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1; set xtics rotate by -45; set ylabel 'MRR'; set key top left; set grid ytics; plot 'build/demo/mrr.dat' using 2:xtic(1) title 'SEK', '' using 3 title 'EUR', '' using 4 title 'NOK'" && echo '   MRR over 12 months drawn to build/demo/mrr.png'
