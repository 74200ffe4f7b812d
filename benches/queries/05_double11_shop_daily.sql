-- 双11 run-up (2025-11-01 to 2025-11-11): every shop's daily net sales, ad spend, ROAS, CM3 and net profit, with the shop's name and team.
SELECT p.date, p.platform, p.shop_id, s.shop_name, s.team,
       SUM(p.net_sales) AS net_sales,
       SUM(p.advertising) AS advertising,
       CAST(SUM(p.net_sales) AS DOUBLE) / NULLIF(-CAST(SUM(p.advertising) AS DOUBLE), 0) AS roas,
       SUM(p.cm3) AS cm3,
       SUM(p.net_profit) AS net_profit
FROM pnl p
JOIN shops s ON s.platform = p.platform AND s.shop_id = p.shop_id
WHERE p.date BETWEEN DATE '2025-11-01' AND DATE '2025-11-11'
GROUP BY p.date, p.platform, p.shop_id, s.shop_name, s.team
ORDER BY p.date, p.platform, p.shop_id;
