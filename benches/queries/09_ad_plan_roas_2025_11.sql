-- The ad platforms' own view of November 2025 (the ad_spend exports): the 30 biggest ad plans (推广计划) by spend, with clicks, cost per click, attributed sales and orders, and ROAS.
SELECT platform, campaign,
       COUNT(DISTINCT shop_id) AS shops,
       SUM(spend) AS spend,
       SUM(clicks) AS clicks,
       CAST(SUM(spend) AS DOUBLE) / NULLIF(SUM(clicks), 0) AS cost_per_click,
       SUM(attributed_sales) AS attributed_sales,
       SUM(attributed_orders) AS attributed_orders,
       CAST(SUM(attributed_sales) AS DOUBLE) / NULLIF(CAST(SUM(spend) AS DOUBLE), 0) AS roas
FROM ad_spend
WHERE date BETWEEN DATE '2025-11-01' AND DATE '2025-11-30'
GROUP BY platform, campaign
ORDER BY spend DESC, platform, campaign
LIMIT 30;
