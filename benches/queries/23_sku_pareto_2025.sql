-- Pareto (ABC) of SKUs by 2025 net sales: the top 50 SKUs with their rank, cumulative share of all net sales and ABC class.
WITH s AS (
  SELECT sku, SUM(net_sales) AS net_sales, SUM(net_profit) AS net_profit
  FROM pnl
  WHERE month BETWEEN '2025-01' AND '2025-12' AND sku IS NOT NULL
  GROUP BY sku
), c AS (
  SELECT sku, net_sales, net_profit,
         CAST(ROW_NUMBER() OVER (ORDER BY net_sales DESC, sku) AS BIGINT) AS rank,
         CAST(SUM(net_sales) OVER (ORDER BY net_sales DESC, sku ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS DOUBLE)
           / CAST(SUM(net_sales) OVER () AS DOUBLE) AS cumulative_share
  FROM s
)
SELECT rank, sku, net_sales, net_profit, cumulative_share,
       CASE WHEN cumulative_share <= 0.8 THEN 'A' WHEN cumulative_share <= 0.95 THEN 'B' ELSE 'C' END AS abc
FROM c
ORDER BY rank
LIMIT 50;
