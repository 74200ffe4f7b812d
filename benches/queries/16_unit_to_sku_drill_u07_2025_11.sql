-- Drill from a unit to its SKUs: the 30 best-selling SKUs of U07 (抖音直播组) in November 2025, their P&L and share of the unit's net sales.
WITH s AS (
  SELECT p.sku,
         SUM(p.net_sales) AS net_sales,
         SUM(p.gross_profit) AS gross_profit,
         SUM(p.advertising) AS advertising,
         SUM(p.cm3) AS cm3,
         SUM(p.net_profit) AS net_profit
  FROM pnl p
  WHERE p.unit_id = 'U07' AND p.month = '2025-11' AND p.sku IS NOT NULL
  GROUP BY p.sku
)
SELECT s.sku, k.spu, k.category, s.net_sales, s.gross_profit, s.advertising, s.cm3, s.net_profit,
       CAST(s.net_sales AS DOUBLE) / NULLIF(CAST(SUM(s.net_sales) OVER () AS DOUBLE), 0) AS share_of_unit
FROM s
JOIN skus k ON k.sku = s.sku
ORDER BY s.net_sales DESC, s.sku
LIMIT 30;
