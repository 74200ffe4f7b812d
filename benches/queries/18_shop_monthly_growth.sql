-- Month-over-month trend of every shop in 2025: net sales and net profit, and the growth of net sales on the month before.
WITH m AS (
  SELECT platform, shop_id, month, SUM(net_sales) AS net_sales, SUM(net_profit) AS net_profit
  FROM pnl
  WHERE month BETWEEN '2025-01' AND '2025-12' AND shop_id IS NOT NULL
  GROUP BY platform, shop_id, month
)
SELECT platform, shop_id, month, net_sales, net_profit,
       LAG(net_sales) OVER (PARTITION BY platform, shop_id ORDER BY month) AS prev_net_sales,
       CAST(net_sales AS DOUBLE)
         / NULLIF(CAST(LAG(net_sales) OVER (PARTITION BY platform, shop_id ORDER BY month) AS DOUBLE), 0) - 1 AS growth
FROM m
ORDER BY platform, shop_id, month;
