-- 双11 (November 2025): the daily P&L of each platform — gross and net sales, gross profit, ad spend, CM3 and net profit per day.
SELECT date, platform,
       SUM(gross_sales) AS gross_sales,
       SUM(net_sales) AS net_sales,
       SUM(gross_profit) AS gross_profit,
       SUM(advertising) AS advertising,
       SUM(cm3) AS cm3,
       SUM(net_profit) AS net_profit
FROM pnl
WHERE month = '2025-11' AND platform IS NOT NULL
GROUP BY date, platform
ORDER BY date, platform;
