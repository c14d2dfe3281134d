-- The reader reads the KPI views only (docs/privileges.md): the customer-data views are the operator's.
REVOKE SELECT ON subbilling.subscription_item_history, subbilling.customer_ledger, subbilling.open_items,
                 subbilling.account_balances
    FROM subbilling_reader;
