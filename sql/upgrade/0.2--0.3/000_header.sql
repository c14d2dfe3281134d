-- subbilling 0.2 -> 0.3 (ALTER EXTENSION subbilling UPDATE TO '0.3')
--
-- Assembled by the Makefile from sql/upgrade/0.2--0.3/*.sql in name order while 0.3 is being
-- developed; each change to the install parts (sql/parts) that alters an object of 0.2 adds
-- its step here.  When 0.3 ships the assembled script is committed as it is and frozen, like
-- sql/subbilling--0.1--0.2.sql.  test/upgrade.sh checks that an upgraded database has exactly
-- the objects of a fresh install.
\echo Use "ALTER EXTENSION subbilling UPDATE TO '0.3'" to load this file. \quit
