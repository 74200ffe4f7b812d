-- Stock losses reconciled by month: the stock adjustments of the ERP (units lost and found) against the inventory_loss the ledger booked at cost.
WITH adj AS (
  SELECT substr(CAST(date AS VARCHAR), 1, 7) AS month,
         COUNT(*) AS adjustments,
         SUM(qty) FILTER (WHERE qty < 0) AS units_lost,
         SUM(qty) FILTER (WHERE qty > 0) AS units_found
  FROM stock_adjustments
  GROUP BY substr(CAST(date AS VARCHAR), 1, 7)
), led AS (
  SELECT month, SUM(qty) AS qty, SUM(amount) AS inventory_loss
  FROM pnl_ledger
  WHERE account = 'inventory_loss'
  GROUP BY month
)
SELECT adj.month, adj.adjustments, adj.units_lost, adj.units_found, led.qty AS ledger_qty, led.inventory_loss
FROM adj
LEFT JOIN led ON led.month = adj.month
ORDER BY adj.month;
