-- Reconciliation of ad spend: per platform and month, what the ad exports say was spent against the advertising the ledger booked from them (they must agree to the cent).
WITH exported AS (
  SELECT platform, substr(CAST(date AS VARCHAR), 1, 7) AS month, SUM(spend) AS spend
  FROM ad_spend
  GROUP BY platform, substr(CAST(date AS VARCHAR), 1, 7)
), booked AS (
  SELECT platform, month, -SUM(amount) AS advertising
  FROM pnl_ledger
  WHERE account = 'advertising' AND source = 'ad_spend'
  GROUP BY platform, month
)
SELECT e.platform, e.month, e.spend AS exported_spend, b.advertising AS ledger_advertising,
       e.spend - b.advertising AS difference
FROM exported e
LEFT JOIN booked b ON b.platform = e.platform AND b.month = e.month
ORDER BY e.platform, e.month;
