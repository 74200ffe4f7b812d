-- ROI (流量ROI) of every ad campaign in November 2025: each SKU's CM2 (profit before ads) is attributed to the campaigns that advertised it by their share of its ad spend; ROI = (attributed CM2 − spend) / spend. The 30 biggest campaigns.
WITH spend AS (
  SELECT platform, shop_id, campaign, sku, -SUM(amount) AS spend
  FROM pnl_ledger
  WHERE month = '2025-11' AND account = 'advertising' AND campaign IS NOT NULL
  GROUP BY platform, shop_id, campaign, sku
), sku_spend AS (
  SELECT platform, shop_id, sku, SUM(spend) AS total_spend
  FROM spend
  GROUP BY platform, shop_id, sku
), sku_cm2 AS (
  SELECT platform, shop_id, sku, SUM(cm2) AS cm2
  FROM pnl
  WHERE month = '2025-11' AND sku IS NOT NULL
  GROUP BY platform, shop_id, sku
)
SELECT s.platform, s.shop_id, s.campaign,
       COUNT(*) AS skus,
       SUM(s.spend) AS spend,
       SUM(CAST(c.cm2 AS DOUBLE) * CAST(s.spend AS DOUBLE) / NULLIF(CAST(t.total_spend AS DOUBLE), 0))
         / NULLIF(CAST(SUM(s.spend) AS DOUBLE), 0) - 1 AS roi
FROM spend s
JOIN sku_spend t ON t.platform = s.platform AND t.shop_id = s.shop_id AND t.sku = s.sku
JOIN sku_cm2 c ON c.platform = s.platform AND c.shop_id = s.shop_id AND c.sku = s.sku
GROUP BY s.platform, s.shop_id, s.campaign
ORDER BY spend DESC, s.platform, s.shop_id, s.campaign
LIMIT 30;
