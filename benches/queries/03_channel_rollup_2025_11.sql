-- November 2025 rolled up one level of the unit tree: each parent unit (channel, company) with the summed P&L of the units directly under it.
SELECT parent.unit_id AS parent_id,
       parent.name AS parent_name,
       COUNT(DISTINCT p.unit_id) AS units,
       SUM(p.net_sales) AS net_sales,
       SUM(p.gross_profit) AS gross_profit,
       SUM(p.cm3) AS cm3,
       SUM(p.allocated_total) AS allocated,
       SUM(p.internal_revenue) + SUM(p.internal_cost) AS internal_settlement,
       SUM(p.net_profit) AS net_profit
FROM pnl p
JOIN amoeba_units u ON u.unit_id = p.unit_id
JOIN amoeba_units parent ON parent.unit_id = u.parent_id
WHERE p.month = '2025-11'
GROUP BY parent.unit_id, parent.name
ORDER BY parent.unit_id;
