-- 618 (June 2025), day by day for the whole company: net sales, ad spend, CM3 and net profit, with the 7-day rolling net sales.
WITH d AS (
  SELECT date, SUM(net_sales) AS net_sales, SUM(advertising) AS advertising, SUM(cm3) AS cm3, SUM(net_profit) AS net_profit
  FROM pnl
  WHERE month = '2025-06'
  GROUP BY date
)
SELECT date, net_sales, advertising, cm3, net_profit,
       SUM(net_sales) OVER (ORDER BY date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS net_sales_7d
FROM d
ORDER BY date;
