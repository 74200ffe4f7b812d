-- Brand × platform P&L for 2025 (品牌 from the SKU master): units sold, net sales, gross profit, CM3, net profit and margin.
SELECT k.brand, l.platform,
       SUM(l.qty) FILTER (WHERE l.account = 'gross_sales') AS units_sold,
       SUM(l.amount) FILTER (WHERE l.account IN ('gross_sales', 'seller_discount', 'shipping_income', 'refund')) AS net_sales,
       SUM(l.amount) FILTER (WHERE l.account IN ('gross_sales', 'seller_discount', 'shipping_income', 'refund', 'cogs', 'inventory_loss')) AS gross_profit,
       SUM(l.amount) AS net_profit,
       CAST(SUM(l.amount) AS DOUBLE)
         / NULLIF(CAST(SUM(l.amount) FILTER (WHERE l.account IN ('gross_sales', 'seller_discount', 'shipping_income', 'refund')) AS DOUBLE), 0) AS net_margin
FROM pnl_ledger l
JOIN skus k ON k.sku = l.sku
WHERE l.month BETWEEN '2025-01' AND '2025-12' AND l.platform IS NOT NULL
GROUP BY k.brand, l.platform
ORDER BY k.brand, l.platform;
