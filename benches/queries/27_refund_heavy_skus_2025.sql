-- The 20 SKUs with the highest return rate in 2025 among those that sold at least 50,000 gross, with the profit the refunds cost them.
SELECT l.sku, k.category,
       SUM(l.amount) FILTER (WHERE l.account = 'gross_sales') AS gross_sales,
       -COALESCE(SUM(l.amount) FILTER (WHERE l.account = 'refund'), 0) AS refunds,
       SUM(l.amount) AS net_profit,
       -CAST(COALESCE(SUM(l.amount) FILTER (WHERE l.account = 'refund'), 0) AS DOUBLE)
         / NULLIF(CAST(SUM(l.amount) FILTER (WHERE l.account = 'gross_sales') AS DOUBLE), 0) AS return_rate
FROM pnl_ledger l
JOIN skus k ON k.sku = l.sku
WHERE l.month BETWEEN '2025-01' AND '2025-12'
GROUP BY l.sku, k.category
HAVING SUM(l.amount) FILTER (WHERE l.account = 'gross_sales') >= 50000
ORDER BY return_rate DESC NULLS LAST, l.sku
LIMIT 20;
