-- Monthly P&L of every unit (阿米巴) in 2025: net sales, the profit layers and the net margin, month by month and unit by unit.
SELECT p.month, p.unit_id, u.name,
       SUM(p.net_sales) AS net_sales,
       SUM(p.gross_profit) AS gross_profit,
       SUM(p.cm2) AS cm2,
       SUM(p.cm3) AS cm3,
       SUM(p.net_profit) AS net_profit,
       CAST(SUM(p.net_profit) AS DOUBLE) / NULLIF(CAST(SUM(p.net_sales) AS DOUBLE), 0) AS net_margin
FROM pnl p
JOIN amoeba_units u ON u.unit_id = p.unit_id
WHERE p.month BETWEEN '2025-01' AND '2025-12'
GROUP BY p.month, p.unit_id, u.name
ORDER BY p.month, p.unit_id;
