-- Reconciliation of the expense ledger (finance/expenses) with the P&L: per month, the expenses booked against what the ledger carries from them (own costs and allocated pools).
WITH e AS (
  SELECT month, SUM(amount) AS expenses, COUNT(*) AS expense_rows
  FROM expenses
  GROUP BY month
), l AS (
  SELECT month, -SUM(amount) AS in_ledger
  FROM pnl_ledger
  WHERE source LIKE 'expenses:%' OR source LIKE 'pool:%'
  GROUP BY month
)
SELECT e.month, e.expense_rows, e.expenses, l.in_ledger, e.expenses - l.in_ledger AS difference
FROM e
LEFT JOIN l ON l.month = e.month
ORDER BY e.month;
