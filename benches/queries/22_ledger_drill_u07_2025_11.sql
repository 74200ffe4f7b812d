-- Drill-through to the ledger: where U07's November 2025 P&L comes from, by account and source (export or rule), with rows and quantities.
SELECT account, source,
       COUNT(*) AS ledger_rows,
       SUM(amount) AS amount,
       SUM(qty) AS qty
FROM pnl_ledger
WHERE unit_id = 'U07' AND month = '2025-11'
GROUP BY account, source
ORDER BY account, source;
