-- The read mode of the MRR views (subbilling.kpi_read, defined by the library; the views read
-- it with current_setting(..., true)): kpi_movements reads the snapshot's month sums as they
-- are in mode snapshot, and kpi_snapshot_status tells the reader how old they are.  The
-- marked-only refresh now sets refreshed_at too.  Copies of the objects of
-- sql/parts/900_kpis.sql (docs/kpis.md#reading-the-snapshot-as-it-is); 999_refresh re-creates
-- kpi_movements and refresh_kpi_snapshots.

CREATE VIEW subbilling.kpi_snapshot_status WITH (security_barrier) AS
SELECT z.computed_on AS as_of, z.refreshed_at, z.time_zone,
       (SELECT count(DISTINCT d.account_id) FROM subbilling_internal.kpi_dirty_accounts d) AS marked_accounts,
       coalesce(z.computed_on = current_date AND z.time_zone = pg_catalog.current_setting('TimeZone')
                AND NOT z.building, false) AS of_today,
       CASE WHEN coalesce(pg_catalog.current_setting('subbilling.kpi_read', true), '') <> 'snapshot' THEN 'exact'
            WHEN z.computed_on IS NOT NULL AND z.time_zone = pg_catalog.current_setting('TimeZone')
                 AND NOT z.building THEN 'snapshot'
            ELSE 'exact_no_snapshot' END AS read_mode,
       CASE WHEN z.computed_on IS NULL THEN 'no snapshot'
            WHEN z.building THEN 'being built'
            WHEN z.time_zone <> pg_catalog.current_setting('TimeZone') THEN 'other time zone' END AS unusable_reason
  FROM (SELECT true) one
  LEFT JOIN subbilling_internal.kpi_snapshot_state z ON true;
COMMENT ON VIEW subbilling.kpi_snapshot_status IS 'one row: the day (as_of), refresh time and time zone of the KPI snapshot the MRR views read, the accounts marked since, whether it is of today, the read mode this session gets (exact, snapshot, exact_no_snapshot) and why a snapshot is not usable';
REVOKE ALL ON subbilling.kpi_snapshot_status FROM PUBLIC;
GRANT SELECT ON subbilling.kpi_snapshot_status TO subbilling_reader, subbilling_operator;
