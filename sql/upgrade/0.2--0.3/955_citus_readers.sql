-- Citus: ar_aging's query as Citus can run it (docs/citus.md, Limits); new in 0.3.
-- distribute() (re-created by 999_refresh.sql) wraps the KPI views for their readers.
CREATE VIEW subbilling_internal.citus_ar_aging WITH (security_barrier) AS
SELECT g.account_id, g.currency, b.current, b.overdue_1_30, b.overdue_31_60, b.overdue_61_90,
       b.overdue_90_plus, b.total
  FROM subbilling_internal.kpi_aging g
 CROSS JOIN LATERAL subbilling.aging_buckets(g.due_dates, g.cum_minor, g.undated_minor,
                                             (pg_catalog.now() AT TIME ZONE g.time_zone)::date, g.currency) b;
COMMENT ON VIEW subbilling_internal.citus_ar_aging IS 'internal (Citus): ar_aging''s query as Citus can run it (the buckets in a LATERAL call); distribute() makes ar_aging read it';
REVOKE ALL ON subbilling_internal.citus_ar_aging FROM PUBLIC;
