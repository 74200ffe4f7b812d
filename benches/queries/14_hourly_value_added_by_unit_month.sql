-- 单位时间附加值 by unit and month: value added (every income and cost but labour, i.e. net profit before allocated_staff) per labour hour (finance hours).
WITH va AS (
  SELECT month, unit_id,
         SUM(net_sales) AS net_sales,
         SUM(net_profit) - SUM(allocated_staff) AS value_added
  FROM pnl
  GROUP BY month, unit_id
)
SELECT h.month, h.unit_id, u.name,
       va.net_sales, va.value_added, h.hours,
       CAST(va.value_added AS DOUBLE) / NULLIF(CAST(h.hours AS DOUBLE), 0) AS value_added_per_hour
FROM hours h
JOIN amoeba_units u ON u.unit_id = h.unit_id
LEFT JOIN va ON va.month = h.month AND va.unit_id = h.unit_id
ORDER BY h.month, h.unit_id;
