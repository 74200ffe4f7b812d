//! Tmall (天猫): 订单报表 `orders`, 宝贝报表 `order_items`, 支付宝账务明细 `ledger`, 万相台/直通车 `ads`.
//!
//! Tmall states postage and platform subsidies (天猫卡券, 集分宝) per order only; the truth splits
//! them over the lines exactly (docs/unified.md). Order amounts are consistent by construction:
//! 买家应付货款 = Σ(价格 × 购买数量 − 店铺优惠), 总金额 = 货款 + 买家应付邮费,
//! 买家实际支付金额 = 总金额 − 天猫卡券抵扣 − 集分宝抵扣.
//!
//! A sub-order fully refunded before the buyer confirmed receipt becomes 交易关闭 on its own row
//! (the truth takes the status from `order_items`); when every sub-order is closed, so is the
//! order. Money reaches the seller's Alipay account on receipt (交易收款, with 天猫佣金,
//! 技术服务费, sometimes 花呗服务费 and 淘宝客佣金); refunds after receipt are 交易退款 with the
//! commission handed back. The ledger also holds the yearly 技术服务费, the 保证金 deposit and
//! weekly 提现 withdrawals (the last two are cash, not fees).

use rand_chacha::ChaCha8Rng;

use super::{Ctx, Plan, ad_plan, ad_rows, carrier, parcels, shop_offset, withdrawals};
use crate::error::Result;
use crate::money::{bp, split_exact};
use crate::shape::{CUTOFF, HOUR, between, chance, day_start, mix, weighted, ymd};
use crate::sim::{AfterSaleKind, Line, Order, Outcome};
use crate::table::{Col, TableBuilder, Ty, col};
use crate::truth::{LineFact, RefundFact, is_not_fee};
use crate::world::Platform;
use crate::write::ExportRow;

pub(crate) const ORDERS: &[Col] = &[
    col("订单编号", Ty::Str),
    col("买家会员名", Ty::Str),
    col("买家应付货款", Ty::Money),
    col("买家应付邮费", Ty::Money),
    col("总金额", Ty::Money),
    col("买家实际支付金额", Ty::Money),
    col("订单状态", Ty::Str),
    col("订单创建时间", Ty::Ts),
    col("订单付款时间 ", Ty::Ts),
    col("确认收货时间", Ty::Ts),
    col("宝贝总数量", Ty::I64),
    col("店铺Id", Ty::Str),
    col("店铺名称", Ty::Str),
    col("物流单号", Ty::Str),
    col("物流公司", Ty::Str),
    col("天猫卡券抵扣", Ty::Money),
    col("集分宝抵扣", Ty::Money),
];

pub(crate) const ITEMS: &[Col] = &[
    col("订单编号", Ty::Str),
    col("子订单编号", Ty::Str),
    col("标题", Ty::Str),
    col("价格", Ty::Money),
    col("购买数量", Ty::I64),
    col("商家编码", Ty::Str),
    col("订单状态", Ty::Str),
    col("退款状态", Ty::Str),
    col("退款金额", Ty::Money),
    col("退款完成时间", Ty::Ts),
    col("店铺优惠", Ty::Money),
];

pub(crate) const LEDGER: &[Col] = &[
    col("账务流水号", Ty::Str),
    col("业务流水号", Ty::Str),
    col("商户订单号", Ty::Str),
    col("发生时间", Ty::Ts),
    col("收入金额（+元）", Ty::Money),
    col("支出金额（-元）", Ty::Money),
    col("业务类型", Ty::Str),
    col("备注", Ty::Str),
];

pub(crate) const ADS: &[Col] = &[
    col("日期", Ty::Date),
    col("计划名称", Ty::Str),
    col("商家编码", Ty::Str),
    col("花费", Ty::Money),
    col("展现量", Ty::I64),
    col("点击量", Ty::I64),
    col("总成交金额", Ty::Money),
    col("总成交笔数", Ty::I64),
];

pub(crate) const SUCCESS: &str = "交易成功";
pub(crate) const CLOSED: &str = "交易关闭";
const SHIPPED: &str = "卖家已发货，等待买家确认";
const PAID: &str = "买家已付款，等待卖家发货";
pub(crate) const REFUNDED: &str = "退款成功";
const REFUND_CLOSED: &str = "退款关闭";

/// docs/unified.md status mapping (tmall uses the order_items row's 订单状态).
fn unified(status: &str) -> &'static str {
    match status {
        PAID => "paid",
        SHIPPED => "shipped",
        SUCCESS => "completed",
        _ => "closed",
    }
}

#[derive(Clone)]
struct OrderRow<'a> {
    id: String,
    buyer: String,
    goods_c: i64,
    postage_c: i64,
    total_c: i64,
    pay_c: i64,
    status: &'static str,
    created: i64,
    paid: Option<i64>,
    received: Option<i64>,
    qty: i64,
    shop_id: &'a str,
    shop_name: &'a str,
    waybill: Option<String>,
    carrier: Option<&'static str>,
    coupon_c: i64,
    points_c: i64,
}

impl ExportRow for OrderRow<'_> {
    fn at(&self) -> i64 {
        self.created
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.id);
        t.s(&self.buyer);
        t.d(self.goods_c);
        t.d(self.postage_c);
        t.d(self.total_c);
        t.d(self.pay_c);
        t.s(self.status);
        t.t(self.created);
        t.ot(self.paid);
        t.ot(self.received);
        t.i(self.qty);
        t.s(self.shop_id);
        t.s(self.shop_name);
        t.os(self.waybill.as_deref());
        t.os(self.carrier);
        t.d(self.coupon_c);
        t.d(self.points_c);
    }

    /// Exported before the buyer confirmed receipt.
    fn stale(&self, _rng: &mut ChaCha8Rng) -> Option<Self> {
        (self.status == SUCCESS).then(|| OrderRow {
            status: SHIPPED,
            received: None,
            ..self.clone()
        })
    }
}

#[derive(Clone)]
struct ItemRow<'a> {
    order_id: String,
    sub_id: String,
    title: &'a str,
    price_c: i64,
    qty: i64,
    sku: &'a str,
    status: &'static str,
    /// The status the line had before a refund closed it (for stale snapshots).
    status_before: &'static str,
    refund_status: &'static str,
    refund_c: i64,
    refunded: Option<i64>,
    discount_c: i64,
    created: i64,
}

impl ExportRow for ItemRow<'_> {
    fn at(&self) -> i64 {
        self.created
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.order_id);
        t.s(&self.sub_id);
        t.s(self.title);
        t.d(self.price_c);
        t.i(self.qty);
        t.s(self.sku);
        t.s(self.status);
        t.s(self.refund_status);
        t.d(self.refund_c);
        t.ot(self.refunded);
        t.d(self.discount_c);
    }

    /// Exported before the refund went through, or before receipt.
    fn stale(&self, _rng: &mut ChaCha8Rng) -> Option<Self> {
        if self.refund_status == REFUNDED {
            Some(ItemRow {
                status: self.status_before,
                refund_status: "",
                refund_c: 0,
                refunded: None,
                ..self.clone()
            })
        } else if self.status == SUCCESS {
            Some(ItemRow {
                status: SHIPPED,
                status_before: SHIPPED,
                ..self.clone()
            })
        } else {
            None
        }
    }
}

#[derive(Clone)]
struct LedgerRow {
    id: String,
    biz: String,
    order: String,
    at: i64,
    income_c: i64,
    expense_c: i64,
    kind: &'static str,
    memo: &'static str,
}

impl ExportRow for LedgerRow {
    fn at(&self) -> i64 {
        self.at
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.id);
        t.s(&self.biz);
        t.s(&self.order);
        t.t(self.at);
        t.d(self.income_c);
        t.d(self.expense_c);
        t.s(self.kind);
        t.s(self.memo);
    }

    /// A fee first booked a few cents off, corrected later.
    fn stale(&self, rng: &mut ChaCha8Rng) -> Option<Self> {
        (self.expense_c < 0 && !is_not_fee(Platform::Tmall, self.kind)).then(|| LedgerRow {
            expense_c: self.expense_c - between(rng, 1, 99),
            ..self.clone()
        })
    }
}

/// A ledger movement before it gets its 账务流水号.
struct Entry {
    at: i64,
    order: String,
    biz: String,
    amount_c: i64,
    kind: &'static str,
    memo: &'static str,
}

/// Platform-funded deductions of an order: (天猫卡券, 集分宝), at most 30 % of the goods.
fn subsidies(rng: &mut ChaCha8Rng, o: &Order, goods: i64) -> (i64, i64) {
    let cap = goods * 3 / 10;
    let coupon = if chance(rng, if o.peak { 0.40 } else { 0.15 }) {
        let c =
            [300, 500, 1_000, 2_000, 3_000, 5_000][weighted(rng, &[3.0, 3.0, 2.0, 1.0, 0.5, 0.5])];
        c.min(cap).max(0)
    } else {
        0
    };
    let points = if chance(rng, 0.05) {
        between(rng, 1, 500).min(cap - coupon).max(0)
    } else {
        0
    };
    (coupon, points)
}

pub(super) fn render(cx: &mut Ctx<'_>, orders: &[Order], rng: &mut ChaCha8Rng) -> Result<()> {
    let (world, shop) = (cx.world, cx.shop);
    let mut order_rows = Vec::with_capacity(orders.len());
    let mut items = Vec::with_capacity(orders.len() * 3 / 2);
    let mut entries: Vec<Entry> = Vec::with_capacity(orders.len() * 3);
    let mut gmv = 0i64;
    for o in orders {
        let id = format!("3{:03}{:012}", shop.index, o.seq);
        let subs: Vec<String> = (1..=o.lines.len()).map(|k| format!("{id}{k:02}")).collect();
        let sub_refs: Vec<&str> = subs.iter().map(String::as_str).collect();
        let weights: Vec<i64> = o.lines.iter().map(Line::net_c).collect();
        let goods = o.goods_c();
        let (coupon, points) = subsidies(rng, o, goods);
        let total = goods + o.postage_c;
        let pay = total - coupon - points;
        let subsidy = split_exact(coupon + points, &weights, &sub_refs);
        let postage = split_exact(o.postage_c, &weights, &sub_refs);
        let shipped = o.shipped.filter(|_| o.cancelled.is_none());
        let c = carrier(rng, goods);
        let waybill = parcels(cx, rng, o, &id, shipped, c);

        let base = if o.paid.is_none() || o.cancelled.is_some() {
            CLOSED
        } else if o.received.is_some() {
            SUCCESS
        } else if o.shipped.is_some() {
            SHIPPED
        } else {
            PAID
        };
        let first_item = items.len();
        for (k, l) in o.lines.iter().enumerate() {
            let share = postage.get(k).copied().unwrap_or(0);
            let (refund_status, refund_c, refunded, closes) = match &l.aftersale {
                Some(a) if a.kind != AfterSaleKind::Exchange => match a.outcome {
                    Outcome::Success(t) => {
                        // A cancelled order also returns the postage it was charged.
                        let amount = a.amount_c + if o.cancelled.is_some() { share } else { 0 };
                        let before_receipt = o.received.is_none_or(|r| t < r);
                        (REFUNDED, amount, Some(t), a.full && before_receipt)
                    }
                    Outcome::Rejected(_) => (REFUND_CLOSED, a.amount_c, None, false),
                    Outcome::Pending => ("", 0, None, false),
                },
                _ => ("", 0, None, false),
            };
            let sku = world.skus.get(l.sku);
            items.push(ItemRow {
                order_id: id.clone(),
                sub_id: subs.get(k).cloned().unwrap_or_default(),
                title: sku.map_or("", |s| s.title.as_str()),
                price_c: l.price_c,
                qty: l.qty,
                sku: sku.map_or("", |s| s.code.as_str()),
                status: if closes { CLOSED } else { base },
                status_before: base,
                refund_status,
                refund_c,
                refunded,
                discount_c: l.discount_c,
                created: o.created,
            });
        }
        let all_closed = items[first_item..].iter().all(|r| r.status == CLOSED);
        let (status, received) = if all_closed {
            (CLOSED, None)
        } else {
            (base, o.received)
        };
        let buyer = format!("tb_{:x}", mix(((shop.index as u64) << 40) | o.buyer));

        if let Some(paid) = o.paid {
            gmv += o.lines.iter().map(Line::gross_c).sum::<i64>();
            for (k, (l, item)) in o.lines.iter().zip(&items[first_item..]).enumerate() {
                cx.truth.line(&LineFact {
                    order_id: &id,
                    line_id: &item.sub_id,
                    sku: item.sku,
                    qty: l.qty,
                    unit_c: l.price_c,
                    gross_c: l.gross_c(),
                    discount_c: l.discount_c,
                    subsidy_c: subsidy.get(k).copied().unwrap_or(0),
                    shipping_c: postage.get(k).copied().unwrap_or(0),
                    status: unified(item.status),
                    ordered_at: o.created,
                    paid_at: paid,
                    completed_at: received,
                    buyer: Some(&buyer),
                    traffic_source: None,
                    creator_id: None,
                    waybill_no: waybill.as_deref(),
                });
                if let (REFUNDED, Some(t)) = (item.refund_status, item.refunded) {
                    cx.truth.refund(&RefundFact {
                        refund_id: Some(&item.sub_id),
                        order_id: &id,
                        line_id: &item.sub_id,
                        amount_c: item.refund_c,
                        refunded_at: t,
                        kind: "unspecified",
                    });
                }
            }
            if let (None, Some(rt)) = (o.cancelled, received) {
                ledger_for_order(
                    &mut entries,
                    rng,
                    &id,
                    paid,
                    rt,
                    total,
                    pay,
                    &items[first_item..],
                );
            }
        }

        order_rows.push(OrderRow {
            id,
            buyer,
            goods_c: goods,
            postage_c: o.postage_c,
            total_c: total,
            pay_c: pay,
            status,
            created: o.created,
            paid: o.paid,
            received,
            qty: o.lines.iter().map(|l| l.qty).sum(),
            shop_id: &shop.id,
            shop_name: &shop.name,
            waybill,
            carrier: shipped.map(|_| c.name),
            coupon_c: coupon,
            points_c: points,
        });
    }

    // Shop-level movements: the deposit, the yearly technical service fee (no order), and the
    // weekly withdrawals of whatever the account holds.
    let offset = shop_offset(shop.index);
    entries.push(Entry {
        at: day_start(2) + 9 * HOUR + offset,
        order: String::new(),
        biz: format!("20250103{:03}0001", shop.index),
        amount_c: -5_000_000,
        kind: "保证金",
        memo: "保证金冻结",
    });
    entries.push(Entry {
        at: day_start(1) + 10 * HOUR + offset,
        order: String::new(),
        biz: format!("20250102{:03}0002", shop.index),
        amount_c: -(gmv / 100).clamp(50_000, 6_000_000),
        kind: "技术服务费",
        memo: "技术服务费年费",
    });
    entries.sort_by_key(|e| e.at);
    let flows: Vec<(i64, i64)> = entries.iter().map(|e| (e.at, e.amount_c)).collect();
    for (i, (at, amount)) in withdrawals(&flows, offset, rng).into_iter().enumerate() {
        entries.push(Entry {
            at,
            order: String::new(),
            biz: format!("{}{:03}{:06}", ymd(at), shop.index, i + 3),
            amount_c: -amount,
            kind: "提现",
            memo: "提现到银行卡",
        });
    }
    entries.sort_by_key(|e| e.at);
    let mut ledger = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let row = LedgerRow {
            id: format!("{}{:03}{:09}", ymd(e.at), shop.index, i + 1),
            biz: e.biz,
            order: e.order,
            at: e.at,
            income_c: e.amount_c.max(0),
            expense_c: e.amount_c.min(0),
            kind: e.kind,
            memo: e.memo,
        };
        if !is_not_fee(Platform::Tmall, row.kind) {
            let order = (!row.order.is_empty()).then_some(row.order.as_str());
            cx.truth
                .fee(order, None, row.kind, row.income_c + row.expense_c, row.at);
        }
        ledger.push(row);
    }

    let name = |tag: &str, plan: Plan<'_>| match plan {
        Plan::Shop => {
            let kind = ["万相台-拉新快", "直通车-店铺通投", "引力魔方-人群推广"]
                [tag.bytes().last().map_or(0, usize::from) % 3];
            format!("{kind}-{tag}")
        }
        Plan::Sku(s) => format!("万相台-货品加速-{}-{tag}", s.code),
        Plan::Peak(p) => format!("{p}大促-全站推广-{tag}"),
    };
    let (campaigns, days) = ad_plan(cx, orders, 0.10, &name, rng);
    let ads = ad_rows(cx, &campaigns, &days, &world.skus);

    cx.write("orders", ORDERS, &order_rows)?;
    cx.write("order_items", ITEMS, &items)?;
    cx.write("ledger", LEDGER, &ledger)?;
    cx.write("ads", ADS, &ads)?;
    Ok(())
}

/// The Alipay movements of one received order: the payment on receipt with the fees taken
/// from it, then refunds after receipt with the commission handed back.
#[allow(clippy::too_many_arguments)]
fn ledger_for_order(
    entries: &mut Vec<Entry>,
    rng: &mut ChaCha8Rng,
    id: &str,
    paid: i64,
    received: i64,
    total: i64,
    pay: i64,
    items: &[ItemRow<'_>],
) {
    let biz = format!("{}2200{id}", ymd(paid));
    let refunded_before: i64 = items
        .iter()
        .filter(|r| r.refund_status == REFUNDED && r.refunded.is_some_and(|t| t <= received))
        .map(|r| r.refund_c)
        .sum();
    let goods: i64 = items.iter().map(|r| r.price_c * r.qty - r.discount_c).sum();
    let goods_net = (goods - refunded_before).max(0);
    let mut push = |at: i64, amount_c: i64, kind: &'static str, memo: &'static str| {
        if amount_c != 0 {
            entries.push(Entry {
                at: at.min(CUTOFF),
                order: id.to_string(),
                biz: biz.clone(),
                amount_c,
                kind,
                memo,
            });
        }
    };
    push(
        received,
        (total - refunded_before).max(0),
        "交易收款",
        "交易收款",
    );
    push(
        received,
        -bp(goods_net, 500),
        "天猫佣金",
        "天猫佣金（类目费率5%）",
    );
    push(
        received,
        -bp(goods_net, 60),
        "技术服务费",
        "技术服务费（0.6%）",
    );
    if chance(rng, 0.25) {
        push(received, -bp(pay, 100), "花呗服务费", "花呗分期服务费");
    }
    if chance(rng, 0.06) {
        let rate = between(rng, 500, 1_500);
        push(
            received,
            -bp(goods_net, rate),
            "淘宝客佣金",
            "淘宝客佣金（淘宝联盟）",
        );
    }
    for r in items {
        if let (REFUNDED, Some(t)) = (r.refund_status, r.refunded)
            && t > received
        {
            push(t, -r.refund_c, "交易退款", "售后退款");
            push(t, bp(r.refund_c, 500), "天猫佣金", "天猫佣金退回");
        }
    }
}
