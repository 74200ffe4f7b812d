-- Stock losses (库存损耗: 盘亏, 临期报废) at cost by month and category, with the units lost.
SELECT l.month, k.category,
       COUNT(DISTINCT l.sku) AS skus,
       SUM(l.qty) AS qty,
       SUM(l.amount) AS inventory_loss
FROM pnl_ledger l
JOIN skus k ON k.sku = l.sku
WHERE l.account = 'inventory_loss'
GROUP BY l.month, k.category
ORDER BY l.month, k.category;
