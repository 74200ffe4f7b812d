-- Are the shops' ads paying for themselves? November 2025 per shop: ROAS (net sales / ad spend) against break-even ROAS (1 / CM2 margin).
SELECT platform, shop_id,
       SUM(net_sales) AS net_sales,
       SUM(cm2) AS cm2,
       SUM(advertising) AS advertising,
       SUM(cm3) AS cm3,
       CAST(SUM(net_sales) AS DOUBLE) / NULLIF(-CAST(SUM(advertising) AS DOUBLE), 0) AS roas,
       CAST(SUM(net_sales) AS DOUBLE) / NULLIF(CAST(SUM(cm2) AS DOUBLE), 0) AS break_even_roas
FROM pnl
WHERE month = '2025-11' AND shop_id IS NOT NULL
GROUP BY platform, shop_id
ORDER BY platform, shop_id;
