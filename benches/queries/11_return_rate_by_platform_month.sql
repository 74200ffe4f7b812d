-- Return rates (退货率, by amount) by platform and month: refunds against gross sales, with units sold and how many SKUs had refunds.
SELECT platform, month,
       SUM(amount) FILTER (WHERE account = 'gross_sales') AS gross_sales,
       -SUM(amount) FILTER (WHERE account = 'refund') AS refunds,
       SUM(qty) FILTER (WHERE account = 'gross_sales') AS units_sold,
       COUNT(DISTINCT sku) FILTER (WHERE account = 'refund') AS skus_refunded,
       -CAST(SUM(amount) FILTER (WHERE account = 'refund') AS DOUBLE)
         / NULLIF(CAST(SUM(amount) FILTER (WHERE account = 'gross_sales') AS DOUBLE), 0) AS return_rate
FROM pnl_ledger
WHERE platform IS NOT NULL AND account IN ('gross_sales', 'refund')
GROUP BY platform, month
ORDER BY platform, month;
