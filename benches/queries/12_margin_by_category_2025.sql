-- Margins by product category (类目) for 2025: net sales, gross margin, CM3 margin and the SKU-level net margin.
SELECT s.category,
       COUNT(DISTINCT p.sku) AS skus,
       SUM(p.net_sales) AS net_sales,
       SUM(p.gross_profit) AS gross_profit,
       SUM(p.cm3) AS cm3,
       SUM(p.net_profit) AS net_profit,
       CAST(SUM(p.gross_profit) AS DOUBLE) / NULLIF(CAST(SUM(p.net_sales) AS DOUBLE), 0) AS gross_margin,
       CAST(SUM(p.cm3) AS DOUBLE) / NULLIF(CAST(SUM(p.net_sales) AS DOUBLE), 0) AS cm3_margin,
       CAST(SUM(p.net_profit) AS DOUBLE) / NULLIF(CAST(SUM(p.net_sales) AS DOUBLE), 0) AS net_margin
FROM pnl p
JOIN skus s ON s.sku = p.sku
WHERE p.month BETWEEN '2025-01' AND '2025-12'
GROUP BY s.category
ORDER BY s.category;
