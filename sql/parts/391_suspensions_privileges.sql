
-- Suspensions are read like pauses; they change only through
-- set_subscription_status() and dunning.
GRANT SELECT ON subbilling.subscription_suspensions TO subbilling_operator;
