-- Internal settlement (内部结算) by rule and month: revenue of the providers, cost of the receivers, and their net (zero company-wide).
SELECT source, month,
       COUNT(DISTINCT unit_id) AS units,
       SUM(amount) FILTER (WHERE account = 'internal_revenue') AS internal_revenue,
       SUM(amount) FILTER (WHERE account = 'internal_cost') AS internal_cost,
       SUM(amount) AS net
FROM pnl_ledger
WHERE account IN ('internal_revenue', 'internal_cost')
GROUP BY source, month
ORDER BY source, month;
