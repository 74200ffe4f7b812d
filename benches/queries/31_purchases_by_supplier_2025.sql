-- Purchasing by supplier in 2025 (erp/purchases with the SKU master): receipts, SKUs, units received, purchase value at cost and purchase freight.
SELECT k.supplier,
       COUNT(DISTINCT p.receipt_id) AS receipts,
       COUNT(DISTINCT p.sku) AS skus,
       SUM(p.qty) AS units,
       SUM(p.qty * p.unit_cost) AS purchase_value,
       SUM(p.freight) AS freight
FROM purchases p
JOIN skus k ON k.sku = p.sku
WHERE p.received_at >= TIMESTAMP '2025-01-01 00:00:00' AND p.received_at < TIMESTAMP '2026-01-01 00:00:00'
GROUP BY k.supplier
ORDER BY k.supplier;
