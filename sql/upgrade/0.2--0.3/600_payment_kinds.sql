-- payment_methods.automatic: a plain column kept from kind by a trigger that calls
-- is_automatic_method(), the one list of automatic kinds (was a generated column with its
-- own copy of the list; DROP EXPRESSION keeps the column and its values in place).
ALTER TABLE subbilling.payment_methods ALTER COLUMN automatic DROP EXPRESSION;
CREATE FUNCTION subbilling_internal.payment_methods_automatic() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    NEW.automatic := subbilling.is_automatic_method(NEW.kind);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.payment_methods_automatic() IS 'trigger: payment_methods.automatic = is_automatic_method(kind), whatever the statement wrote';
REVOKE EXECUTE ON FUNCTION subbilling_internal.payment_methods_automatic() FROM PUBLIC;
CREATE TRIGGER payment_methods_automatic
    BEFORE INSERT OR UPDATE ON subbilling.payment_methods
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.payment_methods_automatic();
COMMENT ON COLUMN subbilling.payment_methods.automatic IS 'true for the kinds collected automatically (is_automatic_method: card and the direct debits); kept from kind by a trigger';
COMMENT ON FUNCTION subbilling.is_automatic_method(text) IS 'true for the automatic payment methods (card and direct debits) that payment requests are made for; the one list of them (payment_methods.automatic, payments settling a request)';
