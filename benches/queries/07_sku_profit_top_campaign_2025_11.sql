-- SKU profitability for one campaign: the November 2025 campaign with the largest spend spread over more than one SKU — each SKU it advertised, what the campaign spent on it, and the SKU's P&L that month.
WITH top_campaign AS (
  SELECT platform, shop_id, campaign
  FROM pnl_ledger
  WHERE month = '2025-11' AND account = 'advertising' AND campaign IS NOT NULL
  GROUP BY platform, shop_id, campaign
  HAVING COUNT(DISTINCT sku) > 1
  ORDER BY SUM(amount), platform, shop_id, campaign
  LIMIT 1
), advertised AS (
  SELECT l.platform, l.shop_id, l.campaign, l.sku, -SUM(l.amount) AS campaign_spend
  FROM pnl_ledger l
  JOIN top_campaign t ON t.platform = l.platform AND t.shop_id = l.shop_id AND t.campaign = l.campaign
  WHERE l.month = '2025-11' AND l.account = 'advertising'
  GROUP BY l.platform, l.shop_id, l.campaign, l.sku
)
SELECT a.campaign, a.sku, a.campaign_spend,
       SUM(p.net_sales) AS net_sales,
       SUM(p.gross_profit) AS gross_profit,
       SUM(p.advertising) AS all_advertising,
       SUM(p.cm3) AS cm3,
       SUM(p.net_profit) AS net_profit,
       CAST(SUM(p.cm2) AS DOUBLE) / NULLIF(CAST(a.campaign_spend AS DOUBLE), 0) AS cm2_per_campaign_yuan
FROM advertised a
JOIN pnl p ON p.platform = a.platform AND p.shop_id = a.shop_id AND p.sku = a.sku
WHERE p.month = '2025-11'
GROUP BY a.campaign, a.sku, a.campaign_spend
ORDER BY net_profit DESC, a.sku;
