-- Weekly P&L by platform through Q4 2025 (weeks start on Monday): net sales, advertising, CM3 and net profit.
SELECT CAST(date_trunc('week', date) AS DATE) AS week, platform,
       COUNT(DISTINCT date) AS days,
       SUM(net_sales) AS net_sales,
       SUM(advertising) AS advertising,
       SUM(cm3) AS cm3,
       SUM(net_profit) AS net_profit
FROM pnl
WHERE date BETWEEN DATE '2025-10-01' AND DATE '2025-12-31' AND platform IS NOT NULL
GROUP BY CAST(date_trunc('week', date) AS DATE), platform
ORDER BY week, platform;
