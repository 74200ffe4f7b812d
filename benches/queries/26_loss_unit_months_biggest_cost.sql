-- Every unit-month that lost money, and the cost account that weighed most on it.
WITH um AS (
  SELECT month, unit_id, SUM(amount) AS net_profit
  FROM pnl_ledger
  GROUP BY month, unit_id
  HAVING SUM(amount) < 0
), costs AS (
  SELECT l.month, l.unit_id, l.account, SUM(l.amount) AS amount,
         ROW_NUMBER() OVER (PARTITION BY l.month, l.unit_id ORDER BY SUM(l.amount), l.account) AS rn
  FROM pnl_ledger l
  JOIN um ON um.month = l.month AND um.unit_id = l.unit_id
  GROUP BY l.month, l.unit_id, l.account
)
SELECT um.month, um.unit_id, um.net_profit, c.account AS biggest_cost, c.amount AS biggest_cost_amount
FROM um
JOIN costs c ON c.month = um.month AND c.unit_id = um.unit_id AND c.rn = 1
ORDER BY um.month, um.unit_id;
