//! The unified views as the generator knows them: `truth/<view>.parquet`.
//!
//! Layouts are exactly those of docs/unified.md (names, order, Arrow types; columns marked
//! `null` there are nullable, the others are not). The platform renderers push truth rows
//! derived from the *final* values of the very rows they export — i.e. after de-duplication
//! and corrections — so a correct catalog reproduces these files row by row.
//!
//! Row order: shops in `erp/shops` order, and within a shop the order in which the renderer
//! met the rows (orders by creation time, money movements by posting time, ads by date);
//! company views in file order. Compare as sets (sort by the natural key) rather than by
//! position.

use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::table::{Col, TableBuilder, Ty, col, req};
use crate::world::Platform;

pub(crate) const ORDER_LINES: &[Col] = &[
    req("platform", Ty::Str),
    req("shop_id", Ty::Str),
    req("order_id", Ty::Str),
    req("line_id", Ty::Str),
    req("sku", Ty::Str),
    req("qty", Ty::I64),
    req("unit_price", Ty::Money),
    req("gross_sales", Ty::Money),
    req("seller_discount", Ty::Money),
    req("platform_subsidy", Ty::Money),
    req("shipping_income", Ty::Money),
    req("net_sales", Ty::Money),
    req("status", Ty::Str),
    req("ordered_at", Ty::Ts),
    req("paid_at", Ty::Ts),
    col("completed_at", Ty::Ts),
    col("buyer", Ty::Str),
    col("traffic_source", Ty::Str),
    col("creator_id", Ty::Str),
    col("waybill_no", Ty::Str),
];

pub(crate) const REFUNDS: &[Col] = &[
    req("platform", Ty::Str),
    req("shop_id", Ty::Str),
    col("refund_id", Ty::Str),
    req("order_id", Ty::Str),
    req("line_id", Ty::Str),
    req("amount", Ty::Money),
    req("refunded_at", Ty::Ts),
    req("kind", Ty::Str),
];

pub(crate) const FEES: &[Col] = &[
    req("platform", Ty::Str),
    req("shop_id", Ty::Str),
    col("order_id", Ty::Str),
    col("line_id", Ty::Str),
    req("fee_name", Ty::Str),
    col("account", Ty::Str),
    req("amount", Ty::Money),
    req("posted_at", Ty::Ts),
];

pub(crate) const AD_SPEND: &[Col] = &[
    req("platform", Ty::Str),
    req("shop_id", Ty::Str),
    req("date", Ty::Date),
    req("campaign", Ty::Str),
    col("sku", Ty::Str),
    req("spend", Ty::Money),
    col("impressions", Ty::I64),
    col("clicks", Ty::I64),
    req("attributed_sales", Ty::Money),
    req("attributed_orders", Ty::I64),
];

pub(crate) const WAYBILLS: &[Col] = &[
    req("waybill_no", Ty::Str),
    req("carrier", Ty::Str),
    col("order_id", Ty::Str),
    req("shipped_at", Ty::Ts),
    req("weight_kg", Ty::Kg),
    req("cost", Ty::Money),
    req("direction", Ty::Str),
];

pub(crate) const PURCHASES: &[Col] = &[
    req("receipt_id", Ty::Str),
    req("sku", Ty::Str),
    req("warehouse", Ty::Str),
    req("received_at", Ty::Ts),
    req("qty", Ty::I64),
    req("unit_cost", Ty::Cost4),
    req("freight", Ty::Money),
];

pub(crate) const STOCK_ADJUSTMENTS: &[Col] = &[
    req("adjustment_id", Ty::Str),
    req("sku", Ty::Str),
    req("warehouse", Ty::Str),
    req("date", Ty::Date),
    req("qty", Ty::I64),
    req("reason", Ty::Str),
];

pub(crate) const EXPENSES: &[Col] = &[
    req("month", Ty::Str),
    req("category", Ty::Str),
    req("cost_center", Ty::Str),
    req("amount", Ty::Money),
];

pub(crate) const HOURS: &[Col] = &[
    req("month", Ty::Str),
    req("unit_id", Ty::Str),
    req("hours", Ty::Money),
];

pub(crate) const SKUS: &[Col] = &[
    req("sku", Ty::Str),
    req("spu", Ty::Str),
    req("brand", Ty::Str),
    req("category", Ty::Str),
    req("weight_kg", Ty::Kg),
    col("shelf_life_days", Ty::I64),
    req("supplier", Ty::Str),
];

pub(crate) const SHOPS: &[Col] = &[
    req("platform", Ty::Str),
    req("shop_id", Ty::Str),
    req("shop_name", Ty::Str),
    req("brand", Ty::Str),
    req("team", Ty::Str),
];

/// The layout of each unified view, in [`crate::UNIFIED_VIEWS`] order.
pub(crate) const LAYOUTS: [&[Col]; 11] = [
    ORDER_LINES,
    REFUNDS,
    FEES,
    AD_SPEND,
    WAYBILLS,
    PURCHASES,
    STOCK_ADJUSTMENTS,
    EXPENSES,
    HOURS,
    SKUS,
    SHOPS,
];

/// The default fee-name → account mapping of docs/unified.md. `None`: not a mapped fee name.
pub(crate) fn fee_account(platform: Platform, name: &str) -> Option<&'static str> {
    Some(match (platform, name) {
        (_, "天猫佣金" | "广告联合活动降扣佣金" | "价保返佣") => {
            "platform_commission"
        }
        (Platform::Jd, "佣金") => "platform_commission",
        (_, "技术服务费" | "交易服务费" | "平台服务费" | "招商服务费") => {
            "platform_service_fee"
        }
        (_, "花呗服务费") => "payment_fee",
        (_, "淘宝客佣金" | "多多进宝佣金" | "渠道分成") => "affiliate_commission",
        (Platform::Douyin, "佣金") => "affiliate_commission",
        (_, "站外推广费") => "advertising",
        (
            _,
            "京豆" | "商品保险服务费" | "运费保险服务费" | "综合违约金" | "运费险" | "违规扣款",
        ) => "other_platform_fee",
        _ => return None,
    })
}

/// Money movements that are not fees (sales, refunds, cash, ad top-ups): marked `_…` in the
/// mappings and kept out of the `fees` view.
pub(crate) fn is_not_fee(platform: Platform, name: &str) -> bool {
    match platform {
        Platform::Tmall => matches!(name, "交易收款" | "交易退款" | "保证金" | "提现"),
        Platform::Jd => name == "货款",
        Platform::Pdd => matches!(name, "交易收入" | "退款" | "提现" | "推广费"),
        Platform::Douyin => matches!(name, "订单结算" | "提现" | "保证金"),
    }
}

/// One `order_lines` row. `net_sales` is derived.
pub(crate) struct LineFact<'a> {
    pub(crate) order_id: &'a str,
    pub(crate) line_id: &'a str,
    pub(crate) sku: &'a str,
    pub(crate) qty: i64,
    pub(crate) unit_c: i64,
    pub(crate) gross_c: i64,
    pub(crate) discount_c: i64,
    pub(crate) subsidy_c: i64,
    pub(crate) shipping_c: i64,
    pub(crate) status: &'static str,
    pub(crate) ordered_at: i64,
    pub(crate) paid_at: i64,
    pub(crate) completed_at: Option<i64>,
    pub(crate) buyer: Option<&'a str>,
    pub(crate) traffic_source: Option<&'a str>,
    pub(crate) creator_id: Option<&'a str>,
    pub(crate) waybill_no: Option<&'a str>,
}

/// One `refunds` row.
pub(crate) struct RefundFact<'a> {
    pub(crate) refund_id: Option<&'a str>,
    pub(crate) order_id: &'a str,
    pub(crate) line_id: &'a str,
    pub(crate) amount_c: i64,
    pub(crate) refunded_at: i64,
    pub(crate) kind: &'static str,
}

/// One `ad_spend` row.
pub(crate) struct AdFact<'a> {
    pub(crate) date: i32,
    pub(crate) campaign: &'a str,
    pub(crate) sku: Option<&'a str>,
    pub(crate) spend_c: i64,
    pub(crate) impressions: Option<i64>,
    pub(crate) clicks: Option<i64>,
    pub(crate) sales_c: i64,
    pub(crate) orders: i64,
}

/// The four platform views of one shop, built while the shop's exports are rendered.
pub(crate) struct ShopTruth {
    platform: Platform,
    shop_id: String,
    lines: TableBuilder,
    refunds: TableBuilder,
    fees: TableBuilder,
    ads: TableBuilder,
}

impl ShopTruth {
    pub(crate) fn new(platform: Platform, shop_id: &str) -> Result<Self> {
        Ok(ShopTruth {
            platform,
            shop_id: shop_id.to_string(),
            lines: TableBuilder::new("truth/order_lines", ORDER_LINES)?,
            refunds: TableBuilder::new("truth/refunds", REFUNDS)?,
            fees: TableBuilder::new("truth/fees", FEES)?,
            ads: TableBuilder::new("truth/ad_spend", AD_SPEND)?,
        })
    }

    pub(crate) fn line(&mut self, l: &LineFact<'_>) {
        let t = &mut self.lines;
        t.s(self.platform.name());
        t.s(&self.shop_id);
        t.s(l.order_id);
        t.s(l.line_id);
        t.s(l.sku);
        t.i(l.qty);
        t.d(l.unit_c);
        t.d(l.gross_c);
        t.d(l.discount_c);
        t.d(l.subsidy_c);
        t.d(l.shipping_c);
        t.d(l.gross_c - l.discount_c + l.shipping_c);
        t.s(l.status);
        t.t(l.ordered_at);
        t.t(l.paid_at);
        t.ot(l.completed_at);
        t.os(l.buyer);
        t.os(l.traffic_source);
        t.os(l.creator_id);
        t.os(l.waybill_no);
    }

    pub(crate) fn refund(&mut self, r: &RefundFact<'_>) {
        let t = &mut self.refunds;
        t.s(self.platform.name());
        t.s(&self.shop_id);
        t.os(r.refund_id);
        t.s(r.order_id);
        t.s(r.line_id);
        t.d(r.amount_c);
        t.t(r.refunded_at);
        t.s(r.kind);
    }

    /// A fee row; the account comes from the default mapping. `amount_c` is signed (income
    /// positive, expense negative).
    pub(crate) fn fee(
        &mut self,
        order_id: Option<&str>,
        line_id: Option<&str>,
        fee_name: &str,
        amount_c: i64,
        posted_at: i64,
    ) {
        let t = &mut self.fees;
        t.s(self.platform.name());
        t.s(&self.shop_id);
        t.os(order_id);
        t.os(line_id);
        t.s(fee_name);
        t.os(fee_account(self.platform, fee_name));
        t.d(amount_c);
        t.t(posted_at);
    }

    pub(crate) fn ad(&mut self, a: &AdFact<'_>) {
        let t = &mut self.ads;
        t.s(self.platform.name());
        t.s(&self.shop_id);
        t.date(a.date);
        t.s(a.campaign);
        t.os(a.sku);
        t.d(a.spend_c);
        t.oi(a.impressions);
        t.oi(a.clicks);
        t.d(a.sales_c);
        t.i(a.orders);
    }

    /// `[order_lines, refunds, fees, ad_spend]`.
    pub(crate) fn finish(self) -> Result<[RecordBatch; 4]> {
        Ok([
            self.lines.finish()?,
            self.refunds.finish()?,
            self.fees.finish()?,
            self.ads.finish()?,
        ])
    }
}
