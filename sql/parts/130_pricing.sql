
-- ---------------------------------------------------------------------------
-- pricing models: tiers (graduated, volume) and packages
-- src/pricing.c; docs/pricing.md
-- ---------------------------------------------------------------------------

CREATE TYPE subbilling.tier AS (
    up_to numeric,
    unit_price subbilling.price,
    flat_price subbilling.price
);
COMMENT ON TYPE subbilling.tier IS
    'a price tier: quantities above the previous tier''s up_to up to and including up_to (NULL: no limit) cost unit_price each plus flat_price once (NULL prices count as zero)';

CREATE FUNCTION subbilling.tier(up_to numeric, unit_price subbilling.price, flat_price subbilling.price DEFAULT NULL)
    RETURNS subbilling.tier
    AS $$ SELECT ROW(up_to, unit_price, flat_price)::subbilling.tier $$
    LANGUAGE SQL IMMUTABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp;
COMMENT ON FUNCTION subbilling.tier(numeric, subbilling.price, subbilling.price) IS
    'a tier value: tier(10, ''1.00 SEK''), tier(NULL, ''0.50 SEK'', ''100.00 SEK'')';

CREATE FUNCTION subbilling.tiered_price(quantity numeric, tiers subbilling.tier[], mode text)
    RETURNS subbilling.price
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.tiered_price(numeric, subbilling.tier[], text) IS
    'price of a quantity under tiers: mode graduated (each unit in its own tier, flat price of every tier reached) or volume (all units at the tier the quantity reaches, plus its flat price); exact, rounded once half away from zero';

CREATE FUNCTION subbilling.package_price(quantity numeric, package_size numeric, package subbilling.price)
    RETURNS subbilling.price
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.package_price(numeric, numeric, subbilling.price) IS
    'price of a quantity sold in packages: ceil(quantity / package_size) * package';
