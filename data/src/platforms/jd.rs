//! JD (京东): `orders` (one row per order line), 结算单 `settlement` (one row per fee item),
//! 京准通 `ads`.
//!
//! JD exports money in the orders file as **doubles** and computes them in floating point:
//! 订单金额 = 京东价 × 订购数量 and 应付金额 = 订单金额 − seller discount + 运费金额 are done here
//! with `f64` arithmetic from the exact cents, so the file shows the same float noise
//! (`179.70000000000002`) while every value still rounds to the exact cents the truth uses.
//! The order's postage sits on its first line.
//!
//! JD's status list has no "shipped" state: an order either waits for dispatch (等待出库) or is
//! done (完成) — JD delivers within days — so an order not yet received at the cutoff is
//! rendered as not yet dispatched, without a parcel. A few paid orders are held by risk
//! control (锁定). Money comes as settlement items after completion (货款 income, 佣金,
//! 交易服务费, occasionally 京豆, insurance, 价保返佣 and 广告联合活动降扣佣金 rebates, penalties);
//! a refund is a 货款 expense carrying its 售后服务单号, with the commission on it returned.

use rand_chacha::ChaCha8Rng;

use super::{Ctx, JD_LOGISTICS, Plan, ad_plan, ad_rows, parcels};
use crate::error::Result;
use crate::money::bp;
use crate::shape::{CUTOFF, DAY, HOUR, MINUTE, between, chance};
use crate::sim::{AfterSaleKind, Order};
use crate::table::{Col, TableBuilder, Ty, col};
use crate::truth::{LineFact, RefundFact};
use crate::write::ExportRow;

const ORDERS: &[Col] = &[
    col("订单号", Ty::Str),
    col("商品ID", Ty::Str),
    col("商品名称", Ty::Str),
    col("货号", Ty::Str),
    col("订购数量", Ty::I64),
    col("京东价", Ty::F64),
    col("订单金额", Ty::F64),
    col("应付金额", Ty::F64),
    col("运费金额", Ty::F64),
    col("订单状态", Ty::Str),
    col("下单时间", Ty::Ts),
    col("付款确认时间", Ty::Ts),
    col("订单完成时间", Ty::Ts),
];

const SETTLEMENT: &[Col] = &[
    col("订单编号", Ty::Str),
    col("商品编号", Ty::Str),
    col("商品数量", Ty::I64),
    col("售后服务单号", Ty::Str),
    col("售后退款时间", Ty::Ts),
    col("费用名称", Ty::Str),
    col("应结金额", Ty::Money),
    col("收支方向", Ty::Str),
    col("结算状态", Ty::Str),
    col("账单生成时间", Ty::Ts),
    col("预计结算时间", Ty::Ts),
    col("到账时间", Ty::Ts),
];

const ADS: &[Col] = &[
    col("日期", Ty::Date),
    col("计划", Ty::Str),
    col("货号", Ty::Str),
    col("花费", Ty::Money),
    col("展现数", Ty::I64),
    col("点击数", Ty::I64),
    col("总订单金额", Ty::Money),
    col("总订单行", Ty::I64),
];

const DONE: &str = "完成";
const WAITING: &str = "等待出库";
const CANCELLED: &str = "已取消";
const LOCKED: &str = "锁定";

fn unified(status: &str) -> &'static str {
    match status {
        WAITING => "paid",
        DONE => "completed",
        LOCKED => "locked",
        _ => "closed",
    }
}

#[derive(Clone)]
struct LineRow<'a> {
    order_id: String,
    item_id: String,
    name: &'a str,
    sku: &'a str,
    qty: i64,
    price: f64,
    amount: f64,
    payable: f64,
    freight: f64,
    status: &'static str,
    created: i64,
    paid: Option<i64>,
    completed: Option<i64>,
}

impl ExportRow for LineRow<'_> {
    fn at(&self) -> i64 {
        self.created
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.order_id);
        t.s(&self.item_id);
        t.s(self.name);
        t.s(self.sku);
        t.i(self.qty);
        t.f(self.price);
        t.f(self.amount);
        t.f(self.payable);
        t.f(self.freight);
        t.s(self.status);
        t.t(self.created);
        t.ot(self.paid);
        t.ot(self.completed);
    }

    /// Exported while the order still waited for dispatch.
    fn stale(&self, _rng: &mut ChaCha8Rng) -> Option<Self> {
        (self.status == DONE).then(|| LineRow {
            status: WAITING,
            completed: None,
            ..self.clone()
        })
    }
}

#[derive(Clone)]
struct SettleRow {
    order_id: String,
    item_id: String,
    qty: i64,
    aftersale: Option<String>,
    refunded: Option<i64>,
    fee: &'static str,
    amount_c: i64,
    income: bool,
    billed: i64,
    expected: i64,
    arrived: Option<i64>,
}

impl ExportRow for SettleRow {
    fn at(&self) -> i64 {
        self.billed
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.order_id);
        t.s(&self.item_id);
        t.i(self.qty);
        t.os(self.aftersale.as_deref());
        t.ot(self.refunded);
        t.s(self.fee);
        t.d(self.amount_c);
        t.s(if self.income { "收入" } else { "支出" });
        t.s(if self.arrived.is_some() {
            "已结算"
        } else {
            "未结算"
        });
        t.t(self.billed);
        t.t(self.expected);
        t.ot(self.arrived);
    }

    /// Exported before the money arrived, or with a fee the bill later corrected.
    fn stale(&self, rng: &mut ChaCha8Rng) -> Option<Self> {
        if self.arrived.is_some() && chance(rng, 0.5) {
            Some(SettleRow {
                arrived: None,
                ..self.clone()
            })
        } else if self.fee != "货款" {
            Some(SettleRow {
                amount_c: self.amount_c + between(rng, 1, 99),
                ..self.clone()
            })
        } else {
            None
        }
    }
}

/// Collects one line's settlement items and their truth.
struct Settlement<'o> {
    order_id: &'o str,
    item_id: &'o str,
    line_id: String,
    qty: i64,
}

impl Settlement<'_> {
    #[allow(clippy::too_many_arguments)]
    fn item(
        &self,
        cx: &mut Ctx<'_>,
        rows: &mut Vec<SettleRow>,
        rng: &mut ChaCha8Rng,
        fee: &'static str,
        amount_c: i64,
        income: bool,
        billed: i64,
        aftersale: Option<(&str, i64)>,
    ) {
        if amount_c <= 0 {
            return;
        }
        let billed = billed.min(CUTOFF);
        // Settled T+7; what is not yet due at the cutoff is 未结算.
        let expected = billed + 7 * DAY;
        let arrived =
            (expected <= CUTOFF).then(|| (expected + between(rng, 0, 8 * HOUR)).min(CUTOFF));
        let row = SettleRow {
            order_id: self.order_id.to_string(),
            item_id: self.item_id.to_string(),
            qty: self.qty,
            aftersale: aftersale.map(|(id, _)| id.to_string()),
            refunded: aftersale.map(|(_, t)| t),
            fee,
            amount_c,
            income,
            billed,
            expected,
            arrived,
        };
        match (fee, income, aftersale) {
            ("货款", false, Some((id, t))) => cx.truth.refund(&RefundFact {
                refund_id: Some(id),
                order_id: self.order_id,
                line_id: &self.line_id,
                amount_c,
                refunded_at: t,
                kind: "unspecified",
            }),
            ("货款", ..) => {}
            _ => {
                let signed = if income { amount_c } else { -amount_c };
                cx.truth.fee(
                    Some(self.order_id),
                    Some(&self.line_id),
                    fee,
                    signed,
                    billed,
                );
            }
        }
        rows.push(row);
    }
}

/// 京东价, 订单金额, 应付金额, 运费金额 as JD computes them: in floating point, from the cents.
fn floats(price_c: i64, qty: i64, discount_c: i64, freight_c: i64) -> (f64, f64, f64, f64) {
    let price = price_c as f64 / 100.0;
    let amount = price * qty as f64;
    let freight = freight_c as f64 / 100.0;
    let payable = amount - discount_c as f64 / 100.0 + freight;
    (price, amount, payable, freight)
}

pub(super) fn render(cx: &mut Ctx<'_>, orders: &[Order], rng: &mut ChaCha8Rng) -> Result<()> {
    let (world, shop) = (cx.world, cx.shop);
    let mut lines = Vec::with_capacity(orders.len() * 3 / 2);
    let mut settlement = Vec::with_capacity(orders.len() * 4);
    let mut aftersale_seq = 0u64;
    for o in orders {
        let order_id = format!("2{:03}{:09}", shop.index, o.seq);
        let paid_open = o.paid.is_some() && o.cancelled.is_none();
        let locked = paid_open && chance(rng, 0.004);
        let completed = o.received.filter(|_| !locked);
        let shipped = o.shipped.filter(|_| completed.is_some());
        let status = if !paid_open {
            CANCELLED
        } else if locked {
            LOCKED
        } else if completed.is_some() {
            DONE
        } else {
            WAITING
        };
        parcels(cx, rng, o, &order_id, shipped, &JD_LOGISTICS);
        let billed_at = completed.map(|t| t + between(rng, 10 * MINUTE, 6 * HOUR));
        for (k, l) in o.lines.iter().enumerate() {
            let sku = world.skus.get(l.sku);
            let item_id = format!("10{:03}{:07}", shop.index, l.sku);
            let freight_c = if k == 0 { o.postage_c } else { 0 };
            let (price, amount, payable, freight) =
                floats(l.price_c, l.qty, l.discount_c, freight_c);
            let line = LineRow {
                order_id: order_id.clone(),
                item_id,
                name: sku.map_or("", |s| s.title.as_str()),
                sku: sku.map_or("", |s| s.code.as_str()),
                qty: l.qty,
                price,
                amount,
                payable,
                freight,
                status,
                created: o.created,
                paid: o.paid,
                completed,
            };
            let st = Settlement {
                order_id: &order_id,
                item_id: &line.item_id,
                line_id: format!("{order_id}-{}", line.item_id),
                qty: l.qty,
            };
            if let Some(paid) = o.paid {
                cx.truth.line(&LineFact {
                    order_id: &order_id,
                    line_id: &st.line_id,
                    sku: line.sku,
                    qty: l.qty,
                    unit_c: l.price_c,
                    gross_c: l.gross_c(),
                    discount_c: l.discount_c,
                    subsidy_c: 0,
                    shipping_c: freight_c,
                    status: unified(status),
                    ordered_at: o.created,
                    paid_at: paid,
                    completed_at: completed,
                    buyer: None,
                    traffic_source: None,
                    creator_id: None,
                    waybill_no: None,
                });
            }
            let net = l.net_c();
            if let Some(billed) = billed_at {
                let s = &mut settlement;
                st.item(cx, s, rng, "货款", net + freight_c, true, billed, None);
                st.item(cx, s, rng, "佣金", bp(net, 800), false, billed, None);
                st.item(cx, s, rng, "交易服务费", bp(net, 60), false, billed, None);
                if chance(rng, 0.05) {
                    let v = between(rng, 50, 500);
                    st.item(cx, s, rng, "京豆", v, false, billed, None);
                }
                if chance(rng, 0.08) {
                    let v = between(rng, 30, 150);
                    st.item(cx, s, rng, "运费保险服务费", v, false, billed, None);
                }
                if chance(rng, 0.03) {
                    let v = between(rng, 50, 300);
                    st.item(cx, s, rng, "商品保险服务费", v, false, billed, None);
                }
                if chance(rng, 0.02) {
                    let v = between(rng, 10, 300);
                    st.item(cx, s, rng, "价保返佣", v, true, billed, None);
                }
                if o.peak && chance(rng, 0.2) {
                    let rebate = bp(net, between(rng, 100, 300));
                    st.item(
                        cx,
                        s,
                        rng,
                        "广告联合活动降扣佣金",
                        rebate,
                        true,
                        billed,
                        None,
                    );
                }
                if chance(rng, 0.003) {
                    let v = between(rng, 500, 5_000);
                    st.item(cx, s, rng, "综合违约金", v, false, billed, None);
                }
            }
            // Refunds: every line of a cancelled order (with its postage), and successful
            // after-sales of completed orders.
            let refund = l
                .aftersale
                .as_ref()
                .filter(|a| a.kind != AfterSaleKind::Exchange)
                .and_then(|a| a.refunded_at().map(|t| (a.amount_c, t)))
                .filter(|_| o.cancelled.is_some() || completed.is_some());
            if let Some((amount, t)) = refund {
                aftersale_seq += 1;
                let id = format!("5{:03}{:08}", shop.index, aftersale_seq);
                let amount = amount + if o.cancelled.is_some() { freight_c } else { 0 };
                let billed = t + between(rng, MINUTE, 2 * HOUR);
                let s = &mut settlement;
                st.item(cx, s, rng, "货款", amount, false, billed, Some((&id, t)));
                if o.cancelled.is_none() {
                    st.item(
                        cx,
                        s,
                        rng,
                        "佣金",
                        bp(amount, 800),
                        true,
                        billed,
                        Some((&id, t)),
                    );
                }
            }
            lines.push(line);
        }
    }
    settlement.sort_by_key(|r| r.billed);

    let name = |tag: &str, plan: Plan<'_>| match plan {
        Plan::Shop => format!("京准通-海投-{tag}"),
        Plan::Sku(s) => format!("京准通-快车-{}-{tag}", s.code),
        Plan::Peak(p) => format!("京东{p}-全站营销-{tag}"),
    };
    let (campaigns, days) = ad_plan(cx, orders, 0.06, &name, rng);
    let ads = ad_rows(cx, &campaigns, &days, &world.skus);

    cx.write("orders", ORDERS, &lines)?;
    cx.write("settlement", SETTLEMENT, &settlement)?;
    cx.write("ads", ADS, &ads)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::floats;

    /// The export's doubles carry float noise but round to the exact cents of the truth.
    #[test]
    fn floats_round_to_the_cents() {
        let cents = |x: f64| (x * 100.0).round() as i64;
        let mut noisy = 0;
        for price in [90, 1_990, 5_990, 12_345, 99_990, 259_900] {
            for qty in 1..=6 {
                for discount in [0, 1, 333, 1_000, price * qty * 2 / 5] {
                    for freight in [0, 600, 1_000] {
                        let (p, amount, payable, f) = floats(price, qty, discount, freight);
                        assert_eq!(cents(p), price);
                        assert_eq!(cents(amount), price * qty);
                        assert_eq!(cents(f), freight);
                        assert_eq!(cents(amount + f - payable), discount);
                        assert_eq!(cents(payable), price * qty - discount + freight);
                        noisy += usize::from(amount * 100.0 != (price * qty) as f64);
                    }
                }
            }
        }
        assert!(noisy > 0, "JD's float noise should show up");
        assert_eq!(floats(7_590, 3, 0, 0).1, 227.70000000000002);
    }
}
