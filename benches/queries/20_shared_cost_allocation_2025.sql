-- Who carries the shared costs (分摊费用) of 2025: each allocated account by unit, and the unit's share of that pool.
-- (The pool total is joined, not SUM(SUM(amount)) OVER (PARTITION BY account): see 19 for DuckDB 2.0.1's window_self_join bug.)
WITH a AS (
  SELECT account, unit_id, SUM(amount) AS amount
  FROM pnl_ledger
  WHERE account LIKE 'allocated_%' AND month BETWEEN '2025-01' AND '2025-12'
  GROUP BY account, unit_id
), pool AS (
  SELECT account, SUM(amount) AS amount
  FROM a
  GROUP BY account
)
SELECT a.account, a.unit_id, a.amount,
       CAST(a.amount AS DOUBLE) / NULLIF(CAST(pool.amount AS DOUBLE), 0) AS share_of_pool
FROM a
JOIN pool ON pool.account = a.account
ORDER BY a.account, a.unit_id;
