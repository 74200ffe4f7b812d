//! The SQL that turns the unified views into ledger rows: one statement per step, over the
//! build session's working tables (`b_*`). Every statement yields the ledger's columns
//! ([`LEDGER_COLUMNS`]) so that the parts are a plain `UNION ALL`.
//!
//! Signs: revenue positive, costs negative. Dating (accrual): sales, discounts, COGS and
//! order-linked fees and freight at the order's payment date; refunds and the COGS their
//! restocked returns reverse at the refund date; money without an order at its posting date.

use amoeba_catalog::mapping::sql_string;
use amoeba_catalog::model::{CostingMethod, Model};

use super::assign::{RowKeys, unit_expr};
use super::spread::Spread;

/// The ledger's columns, in order (before `month`).
/// The sources of the month rules' rows (`allocation.rs`): every other row is summed from
/// the exports at the ledger grain (`b_base`).
pub(crate) const MONTH_RULE_SOURCES: &str = "(source LIKE 'expenses:%' OR source LIKE 'pool:%' \
     OR source LIKE 'settlement:%' OR source LIKE 'step_down:%')";

pub(crate) const LEDGER_COLUMNS: &str =
    "date, platform, shop_id, sku, campaign, unit_id, account, amount, qty, source";

/// `b_shops`: every (platform, shop) seen in a platform view, with its master data and the
/// unit of a row that has no SKU.
pub(crate) fn shops(model: &Model) -> String {
    let unit = unit_expr(
        model,
        "shops",
        RowKeys {
            platform: Some("x.platform"),
            shop: Some("x.shop_id"),
            team: Some("s.team"),
            brand: Some("s.brand"),
            ..RowKeys::default()
        },
    );
    format!(
        "SELECT x.platform, x.shop_id, s.team, s.brand, {unit} AS unit_id \
         FROM (SELECT platform, shop_id FROM order_lines UNION SELECT platform, shop_id FROM refunds \
               UNION SELECT platform, shop_id FROM fees UNION SELECT platform, shop_id FROM ad_spend) x \
         LEFT JOIN shops s ON s.platform = x.platform AND s.shop_id = x.shop_id"
    )
}

/// `b_lines`: paid order lines with their date, master data and unit; `issued` when the goods
/// left (or will leave) the warehouse: every paid line except one closed before shipment.
pub(crate) fn lines(model: &Model) -> String {
    let unit = unit_expr(
        model,
        "order_lines",
        RowKeys {
            platform: Some("l.platform"),
            shop: Some("l.shop_id"),
            team: Some("s.team"),
            brand: Some("COALESCE(k.brand, s.brand)"),
            category: Some("k.category"),
            sku: Some("l.sku"),
        },
    );
    format!(
        "SELECT l.platform, l.shop_id, l.order_id, l.line_id, l.sku, l.qty, l.gross_sales, \
                l.seller_discount, l.shipping_income, l.net_sales, l.status, l.paid_at, \
                CAST(l.paid_at AS DATE) AS date, {unit} AS unit_id, \
                NOT (l.status = 'closed' AND w.order_id IS NULL) AS issued \
         FROM order_lines l \
         LEFT JOIN shops s ON s.platform = l.platform AND s.shop_id = l.shop_id \
         LEFT JOIN skus k ON k.sku = l.sku \
         LEFT JOIN (SELECT DISTINCT order_id FROM waybills \
                    WHERE direction = 'outbound' AND order_id IS NOT NULL) w \
                ON w.order_id = l.order_id"
    )
}

/// `b_orders`: one row per paid order, with the unit of its first line; `unique_id` when the
/// order id names one order only across platforms (waybills carry the bare order id). (A join,
/// not `COUNT(*) OVER (PARTITION BY order_id)`: a window costs microseconds per partition, and
/// here nearly every order id is a partition of one.)
pub(crate) const ORDERS: &str = "\
    WITH o AS ( \
        SELECT platform, shop_id, order_id, MIN(date) AS date, \
               first_value(unit_id ORDER BY line_id) AS unit_id \
        FROM b_lines GROUP BY platform, shop_id, order_id) \
    SELECT o.platform, o.shop_id, o.order_id, o.date, o.unit_id, n.shops = 1 AS unique_id \
    FROM o JOIN (SELECT order_id, COUNT(*) AS shops FROM o GROUP BY order_id) n \
      ON (n.order_id IS NOT DISTINCT FROM o.order_id)";

/// Sales: gross sales, seller discounts and shipping income of every paid line.
pub(crate) const SALES: &str = "\
    SELECT date, platform, shop_id, sku, CAST(NULL AS VARCHAR) AS campaign, unit_id, \
           'gross_sales' AS account, CAST(gross_sales AS DECIMAL(38,2)) AS amount, qty, \
           'order_lines' AS source FROM b_lines \
    UNION ALL \
    SELECT date, platform, shop_id, sku, NULL, unit_id, 'seller_discount', \
           CAST(-seller_discount AS DECIMAL(38,2)), NULL, 'order_lines' FROM b_lines \
    UNION ALL \
    SELECT date, platform, shop_id, sku, NULL, unit_id, 'shipping_income', \
           CAST(shipping_income AS DECIMAL(38,2)), NULL, 'order_lines' FROM b_lines";

/// Refunds at their refund date, on the refunded line's SKU and unit (the shop's unit when the
/// line is not in the data, e.g. an order paid before it).
pub(crate) const REFUNDS: &str = "\
    SELECT CAST(r.refunded_at AS DATE) AS date, r.platform, r.shop_id, l.sku, \
           CAST(NULL AS VARCHAR) AS campaign, COALESCE(l.unit_id, s.unit_id) AS unit_id, \
           'refund' AS account, CAST(-r.amount AS DECIMAL(38,2)) AS amount, \
           CAST(NULL AS BIGINT) AS qty, 'refunds' AS source \
    FROM refunds r \
    LEFT JOIN b_lines l ON l.platform = r.platform AND l.shop_id = r.shop_id AND l.line_id = r.line_id \
    LEFT JOIN b_shops s ON s.platform = r.platform AND s.shop_id = r.shop_id";

/// `b_fees`: fee rows with the model's account (over the mapping's), `_`-accounts (money that
/// is not a fee) removed, unmapped names kept on `other_platform_fee` (and reported).
pub(crate) fn fees(model: &Model) -> String {
    let overrides = if model.fee_accounts.is_empty() {
        "CAST(NULL AS VARCHAR)".to_string()
    } else {
        let whens: Vec<String> = model
            .fee_accounts
            .iter()
            .map(|(name, account)| {
                format!("WHEN {} THEN {}", sql_string(name), sql_string(account))
            })
            .collect();
        format!("CASE fee_name {} END", whens.join(" "))
    };
    format!(
        "SELECT platform, shop_id, order_id, line_id, fee_name, amount, \
                CAST(posted_at AS DATE) AS posted, \
                COALESCE({overrides}, account, 'other_platform_fee') AS account, \
                COALESCE({overrides}, account) IS NULL AS unmapped \
         FROM fees WHERE NOT starts_with(COALESCE({overrides}, account, ''), '_')"
    )
}

/// `b_fee_lines`: every fee with the line it names, if that line is in the data (`hit_line`).
/// [`FEES`] reads it three times (on the line, by order, on the shop), so it is built once.
pub(crate) const FEE_LINES: &str = "\
    SELECT f.*, l.line_id AS hit_line, l.date AS l_date, l.sku AS l_sku, l.unit_id AS l_unit \
    FROM b_fees f LEFT JOIN b_lines l \
      ON l.platform = f.platform AND l.shop_id = f.shop_id AND l.line_id = f.line_id";

/// `b_fee_spread`: the fees stated on an order, not on one of its lines, with the order's
/// lines to spread them over by net sales (in line order).
pub(crate) const FEE_SPREAD: Spread<'static> = Spread {
    name: "b_fee_spread",
    sql: "\
        WITH by_order AS ( \
            SELECT f.platform, f.shop_id, f.order_id, f.account, f.fee_name, SUM(f.amount) AS amount \
            FROM b_fee_lines f JOIN b_orders o \
              ON o.platform = f.platform AND o.shop_id = f.shop_id AND o.order_id = f.order_id \
            WHERE f.hit_line IS NULL GROUP BY 1, 2, 3, 4, 5) \
        SELECT l.date, b.platform, b.shop_id, b.order_id, b.account, b.fee_name, l.line_id, \
               l.sku, l.unit_id, b.amount, l.net_sales \
        FROM by_order b JOIN b_lines l \
          ON l.platform = b.platform AND l.shop_id = b.shop_id AND l.order_id = b.order_id \
        ORDER BY b.platform, b.shop_id, b.order_id, b.account, b.fee_name, l.line_id",
    groups: &["platform", "shop_id", "order_id", "account", "fee_name"],
    amount: "amount",
    driver: "net_sales",
};

/// Fees: on their line; spread over their order's lines by net sales ([`FEE_SPREAD`]); or on
/// the shop.
pub(crate) const FEES: &str = "\
    SELECT l_date AS date, platform, shop_id, l_sku AS sku, CAST(NULL AS VARCHAR) AS campaign, \
           l_unit AS unit_id, account, CAST(amount AS DECIMAL(38,2)) AS amount, \
           CAST(NULL AS BIGINT) AS qty, concat('fees:', fee_name) AS source \
    FROM b_fee_lines WHERE hit_line IS NOT NULL \
    UNION ALL \
    SELECT date, platform, shop_id, sku, NULL, unit_id, account, CAST(share AS DECIMAL(38,2)), \
           NULL, concat('fees:', fee_name) \
    FROM b_fee_spread \
    UNION ALL \
    SELECT f.posted, f.platform, f.shop_id, NULL, NULL, s.unit_id, f.account, \
           CAST(f.amount AS DECIMAL(38,2)), NULL, concat('fees:', f.fee_name) \
    FROM b_fee_lines f \
    LEFT JOIN b_orders o ON o.platform = f.platform AND o.shop_id = f.shop_id AND o.order_id = f.order_id \
    LEFT JOIN b_shops s ON s.platform = f.platform AND s.shop_id = f.shop_id \
    WHERE f.hit_line IS NULL AND o.order_id IS NULL";

/// Ad spend: on its SKU; shop- or plan-level spend spread over the shop's SKUs sold that day
/// by net sales; on the shop when it sold nothing that day.
pub(crate) fn ads(model: &Model) -> String {
    let unit = unit_expr(
        model,
        "ad_spend",
        RowKeys {
            platform: Some("a.platform"),
            shop: Some("a.shop_id"),
            team: Some("s.team"),
            brand: Some("COALESCE(k.brand, s.brand)"),
            category: Some("k.category"),
            sku: Some("a.sku"),
        },
    );
    format!(
        "SELECT a.date, a.platform, a.shop_id, a.sku, a.campaign, {unit} AS unit_id, \
                'advertising' AS account, CAST(-a.spend AS DECIMAL(38,2)) AS amount, \
                CAST(NULL AS BIGINT) AS qty, 'ad_spend' AS source \
         FROM ad_spend a \
         LEFT JOIN shops s ON s.platform = a.platform AND s.shop_id = a.shop_id \
         LEFT JOIN skus k ON k.sku = a.sku \
         WHERE a.sku IS NOT NULL \
         UNION ALL \
         SELECT date, platform, shop_id, sku, campaign, unit_id, 'advertising', \
                CAST(-share AS DECIMAL(38,2)), NULL, 'ad_spend' \
         FROM b_ad_spread \
         UNION ALL \
         SELECT p.date, p.platform, p.shop_id, NULL, p.campaign, s.unit_id, 'advertising', \
                CAST(-p.spend AS DECIMAL(38,2)), NULL, 'ad_spend' \
         FROM b_ad_plans p \
         LEFT JOIN (SELECT DISTINCT platform, shop_id, date FROM b_lines) d \
           ON d.platform = p.platform AND d.shop_id = p.shop_id AND d.date = p.date \
         LEFT JOIN b_shops s ON s.platform = p.platform AND s.shop_id = p.shop_id \
         WHERE d.date IS NULL"
    )
}

/// `b_ad_plans`: ad spend without a SKU (a plan's or the shop's), by shop, day and campaign.
pub(crate) const AD_PLANS: &str = "\
    SELECT platform, shop_id, date, campaign, SUM(spend) AS spend \
    FROM ad_spend WHERE sku IS NULL GROUP BY 1, 2, 3, 4";

/// `b_ad_spread`: each plan's spend with the shop's SKUs sold that day, to spread it over them
/// by net sales (in SKU order).
pub(crate) const AD_SPREAD: Spread<'static> = Spread {
    name: "b_ad_spread",
    sql: "\
        WITH sold AS ( \
            SELECT platform, shop_id, date, sku, unit_id, SUM(net_sales) AS net_sales \
            FROM b_lines GROUP BY 1, 2, 3, 4, 5) \
        SELECT p.date, p.platform, p.shop_id, p.campaign, d.sku, d.unit_id, p.spend, d.net_sales \
        FROM b_ad_plans p JOIN sold d \
          ON d.platform = p.platform AND d.shop_id = p.shop_id AND d.date = p.date \
        ORDER BY p.platform, p.shop_id, p.date, p.campaign, d.sku, d.unit_id",
    groups: &["platform", "shop_id", "date", "campaign"],
    amount: "spend",
    driver: "net_sales",
};

/// Freight: a waybill of a known order is spread over the order's lines by net sales (outbound
/// at the payment date, returns at their shipping date); any other waybill is the fallback
/// unit's (the warehouse, in the default model) at its shipping date.
pub(crate) fn waybills(model: &Model) -> String {
    let otherwise = sql_string(
        model
            .fallback
            .get("waybills")
            .map_or(model.root(), String::as_str),
    );
    format!(
        "SELECT date, platform, shop_id, sku, CAST(NULL AS VARCHAR) AS campaign, unit_id, \
                'shipping_cost' AS account, CAST(-share AS DECIMAL(38,2)) AS amount, \
                CAST(NULL AS BIGINT) AS qty, 'waybills' AS source \
         FROM b_waybill_spread \
         UNION ALL \
         SELECT shipped, NULL, NULL, NULL, NULL, {otherwise}, 'shipping_cost', \
                CAST(-cost AS DECIMAL(38,2)), NULL, 'waybills' \
         FROM b_waybills WHERE platform IS NULL"
    )
}

/// `b_waybills`: freight by order, direction and shipping day, with the order's shop when the
/// order id is known and names one order only.
pub(crate) const WAYBILLS_BY_ORDER: &str = "\
    SELECT w.order_id, w.direction, CAST(w.shipped_at AS DATE) AS shipped, SUM(w.cost) AS cost, \
           o.platform, o.shop_id \
    FROM waybills w LEFT JOIN b_orders o ON o.order_id = w.order_id AND o.unique_id \
    GROUP BY 1, 2, 3, 5, 6";

/// `b_waybill_spread`: the freight of known orders with the order's lines, to spread it over
/// them by net sales (in line order); outbound freight is dated with the line (the payment
/// date), returns at their shipping date.
pub(crate) const WAYBILL_SPREAD: Spread<'static> = Spread {
    name: "b_waybill_spread",
    sql: "\
        SELECT CASE WHEN w.direction = 'outbound' THEN l.date ELSE w.shipped END AS date, \
               w.order_id, w.direction, w.shipped, l.line_id, l.platform, l.shop_id, l.sku, \
               l.unit_id, w.cost, l.net_sales \
        FROM b_waybills w JOIN b_lines l \
          ON l.platform = w.platform AND l.shop_id = w.shop_id AND l.order_id = w.order_id \
        ORDER BY w.order_id, w.direction, w.shipped, l.line_id",
    groups: &["order_id", "direction", "shipped"],
    amount: "cost",
    driver: "net_sales",
};

/// `b_moves`: every stock movement, ordered for costing: receipts (landed: qty × unit cost +
/// freight), issues of the issued lines at their payment time, restocked returns at their
/// refund time (a return-and-refund, or a refund of an order with a return waybill; the units
/// in proportion to the refunded share of the line), and stock-take differences at the end of
/// their day. Sales issue from the SKU's home warehouse: the one of its first receipt.
pub(crate) fn moves(model: &Model) -> String {
    let loss_unit = unit_expr(
        model,
        "stock_adjustments",
        RowKeys {
            brand: Some("k.brand"),
            category: Some("k.category"),
            sku: Some("a.sku"),
            ..RowKeys::default()
        },
    );
    format!(
        "WITH home AS ( \
             SELECT sku, first_value(warehouse ORDER BY received_at, receipt_id, warehouse) AS warehouse \
             FROM purchases GROUP BY sku), \
         restocked AS ( \
             SELECT r.platform, r.shop_id, r.line_id, r.refunded_at, \
                    CASE WHEN l.gross_sales - l.seller_discount <= 0 \
                              OR r.amount >= l.gross_sales - l.seller_discount THEN l.qty \
                         ELSE CAST(floor(CAST(l.qty AS DECIMAL(38,4)) * r.amount \
                                         / (l.gross_sales - l.seller_discount)) AS BIGINT) END AS qty, \
                    l.sku, l.unit_id, r.refund_id \
             FROM refunds r JOIN b_lines l \
               ON l.platform = r.platform AND l.shop_id = r.shop_id AND l.line_id = r.line_id \
             WHERE l.issued AND (r.kind = 'return_refund' OR (r.kind = 'unspecified' AND r.order_id IN \
                   (SELECT order_id FROM waybills WHERE direction = 'return' AND order_id IS NOT NULL))))  \
         SELECT sku, warehouse, received_at AS ts, 0 AS ord, receipt_id AS id, 'receipt' AS kind, qty, \
                CAST(CAST(qty AS DECIMAL(38,4)) * unit_cost + freight AS DECIMAL(38,4)) AS receipt_value, \
                CAST(NULL AS VARCHAR) AS line, CAST(NULL AS DATE) AS date, \
                CAST(NULL AS VARCHAR) AS platform, CAST(NULL AS VARCHAR) AS shop_id, \
                CAST(NULL AS VARCHAR) AS unit_id \
         FROM purchases \
         UNION ALL \
         SELECT r.sku, COALESCE(h.warehouse, ''), r.refunded_at, 1, COALESCE(r.refund_id, r.line_id), 'return', r.qty, \
                NULL, concat(r.platform, '|', r.shop_id, '|', r.line_id), CAST(r.refunded_at AS DATE), \
                r.platform, r.shop_id, r.unit_id \
         FROM restocked r LEFT JOIN home h ON h.sku = r.sku WHERE r.qty > 0 \
         UNION ALL \
         SELECT l.sku, COALESCE(h.warehouse, ''), l.paid_at, 2, l.line_id, 'issue', l.qty, NULL, \
                concat(l.platform, '|', l.shop_id, '|', l.line_id), l.date, l.platform, l.shop_id, l.unit_id \
         FROM b_lines l LEFT JOIN home h ON h.sku = l.sku WHERE l.issued \
         UNION ALL \
         SELECT a.sku, a.warehouse, arrow_cast(CAST(a.date AS TIMESTAMP) + INTERVAL '23 hours 59 minutes 59 seconds', \
                           'Timestamp(Microsecond, None)'), 3, \
                a.adjustment_id, 'adjust', a.qty, NULL, NULL, a.date, NULL, NULL, {loss_unit} \
         FROM stock_adjustments a LEFT JOIN skus k ON k.sku = a.sku \
         ORDER BY sku, warehouse, ts, ord, id, line"
    )
}

/// COGS, its reversals and inventory losses from the costed movements (`b_costed`).
pub(crate) fn costed(method: CostingMethod) -> String {
    let method = match method {
        CostingMethod::Fifo => "fifo",
        CostingMethod::MovingAverage => "moving_average",
    };
    format!(
        "SELECT date, platform, shop_id, sku, CAST(NULL AS VARCHAR) AS campaign, unit_id, \
                CASE kind WHEN 'adjust' THEN 'inventory_loss' ELSE 'cogs' END AS account, \
                value AS amount, \
                CASE kind WHEN 'issue' THEN qty WHEN 'return' THEN -qty ELSE qty END AS qty, \
                CASE kind WHEN 'issue' THEN 'cogs:{method}' WHEN 'return' THEN 'cogs:return' \
                          ELSE 'stock_adjustments' END AS source \
         FROM b_costed WHERE kind <> 'receipt'"
    )
}
