-- Cost structure of every unit in November 2025: each ledger account's amount and its share of the unit's net sales.
-- (The unit's net sales come from a join, not SUM(...) OVER (PARTITION BY unit_id): DuckDB 2.0.1's window_self_join
-- rewrite drops the hive-partition filter month = '2025-11' from the copy of the scan it joins back, and sums every month.)
WITH a AS (
  SELECT unit_id, account, SUM(amount) AS amount
  FROM pnl_ledger
  WHERE month = '2025-11'
  GROUP BY unit_id, account
), ns AS (
  SELECT unit_id, SUM(amount) AS net_sales
  FROM a
  WHERE account IN ('gross_sales', 'seller_discount', 'shipping_income', 'refund')
  GROUP BY unit_id
)
SELECT a.unit_id, a.account, a.amount,
       CAST(a.amount AS DOUBLE) / NULLIF(CAST(ns.net_sales AS DOUBLE), 0) AS share_of_net_sales
FROM a
LEFT JOIN ns ON ns.unit_id = a.unit_id
ORDER BY a.unit_id, a.account;
