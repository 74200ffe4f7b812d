-- The 2025 league table of hourly efficiency: each unit's value added, hours and value added per hour, ranked.
WITH va AS (
  SELECT unit_id, SUM(net_profit) - SUM(allocated_staff) AS value_added
  FROM pnl
  WHERE month BETWEEN '2025-01' AND '2025-12'
  GROUP BY unit_id
), h AS (
  SELECT unit_id, SUM(hours) AS hours
  FROM hours
  WHERE month BETWEEN '2025-01' AND '2025-12'
  GROUP BY unit_id
)
SELECT CAST(RANK() OVER (ORDER BY CAST(va.value_added AS DOUBLE) / NULLIF(CAST(h.hours AS DOUBLE), 0) DESC NULLS LAST) AS BIGINT) AS rank,
       h.unit_id, u.name, u.kind, va.value_added, h.hours,
       CAST(va.value_added AS DOUBLE) / NULLIF(CAST(h.hours AS DOUBLE), 0) AS value_added_per_hour
FROM h
JOIN va ON va.unit_id = h.unit_id
JOIN amoeba_units u ON u.unit_id = h.unit_id
ORDER BY rank, h.unit_id;
