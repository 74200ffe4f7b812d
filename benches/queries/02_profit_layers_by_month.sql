-- The company's profit layers by month (净销售额 → 毛利 → CM2 → CM3 → 净利润), with the margin of each layer.
SELECT month,
       SUM(gross_sales) AS gross_sales,
       SUM(net_sales) AS net_sales,
       SUM(gross_profit) AS gross_profit,
       SUM(cm2) AS cm2,
       SUM(cm3) AS cm3,
       SUM(net_profit) AS net_profit,
       CAST(SUM(gross_profit) AS DOUBLE) / NULLIF(CAST(SUM(net_sales) AS DOUBLE), 0) AS gross_margin,
       CAST(SUM(cm2) AS DOUBLE) / NULLIF(CAST(SUM(net_sales) AS DOUBLE), 0) AS cm2_margin,
       CAST(SUM(cm3) AS DOUBLE) / NULLIF(CAST(SUM(net_sales) AS DOUBLE), 0) AS cm3_margin,
       CAST(SUM(net_profit) AS DOUBLE) / NULLIF(CAST(SUM(net_sales) AS DOUBLE), 0) AS net_margin
FROM pnl
GROUP BY month
ORDER BY month;
