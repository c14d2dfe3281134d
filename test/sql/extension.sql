-- the extension installs into its own schema and is not relocatable
SELECT extname, extversion, extrelocatable, extnamespace::regnamespace AS schema
  FROM pg_extension WHERE extname = 'subbilling';
