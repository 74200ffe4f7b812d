-- The 20 SKUs that lost the most money in 2025 (net profit before shared costs, which carry no SKU), with their category, brand and where the money went.
SELECT p.sku, s.category, s.brand,
       SUM(p.net_sales) AS net_sales,
       SUM(p.gross_profit) AS gross_profit,
       SUM(p.refund) AS refund,
       SUM(p.advertising) AS advertising,
       SUM(p.net_profit) AS net_profit
FROM pnl p
JOIN skus s ON s.sku = p.sku
WHERE p.month BETWEEN '2025-01' AND '2025-12'
GROUP BY p.sku, s.category, s.brand
HAVING SUM(p.net_profit) < 0
ORDER BY net_profit, p.sku
LIMIT 20;
