-- What each platform takes (平台佣金率) in 2025: commission, service, payment, affiliate, other fees and freight, and their share of net sales.
SELECT platform,
       SUM(net_sales) AS net_sales,
       SUM(platform_commission) AS platform_commission,
       SUM(platform_service_fee) AS platform_service_fee,
       SUM(payment_fee) AS payment_fee,
       SUM(affiliate_commission) AS affiliate_commission,
       SUM(other_platform_fee) AS other_platform_fee,
       SUM(shipping_cost) AS shipping_cost,
       -CAST(SUM(platform_commission) + SUM(platform_service_fee) + SUM(payment_fee) AS DOUBLE)
         / NULLIF(CAST(SUM(net_sales) AS DOUBLE), 0) AS take_rate,
       -CAST(SUM(platform_commission) + SUM(platform_service_fee) + SUM(payment_fee)
             + SUM(affiliate_commission) + SUM(other_platform_fee) AS DOUBLE)
         / NULLIF(CAST(SUM(net_sales) AS DOUBLE), 0) AS all_fees_share
FROM pnl
WHERE month BETWEEN '2025-01' AND '2025-12' AND platform IS NOT NULL
GROUP BY platform
ORDER BY platform;
