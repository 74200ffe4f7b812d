//! Pinduoduo (拼多多): `orders` (one SKU per order), 账务明细 `bill`, 多多推广 `ads`.
//!
//! PDD exports order and ad amounts as **strings** with two decimals ("12.50"), the ad report's
//! date as a string, and ends every ad report with a 合计 (totals) row and a 说明 (note) row that
//! a reader must skip. The bill has no id column: its natural key is 商户订单号 + 发生时间 +
//! 账务类型 + amounts, which the generator keeps unique (one refund per order at most; shop-level
//! rows at distinct times), and corrections of the bill therefore only touch 备注.
//!
//! 商品总价 = 价格 × 数量 (so the unit price divides exactly), 用户实付 = 商品总价 + 邮费 − 店铺优惠 −
//! 平台优惠, 商家实收 = 用户实付 + 平台优惠 (PDD pays its own subsidy back to the seller). Money
//! arrives on receipt (交易收入, with 技术服务费 0.6 % and sometimes 多多进宝佣金); refunds are
//! 退款 rows; the cash side of ad spend (推广费) and weekly 提现 have no order.

use rand_chacha::ChaCha8Rng;

use super::{Ctx, Plan, ad_plan, carrier, parcels, shop_offset, withdrawals};
use crate::error::Result;
use crate::money::{bp, yuan};
use crate::shape::{CUTOFF, DAY, HOUR, between, chance, date_of, date32, day_start, ymd};
use crate::sim::{AfterSaleKind, Order, Outcome};
use crate::table::{Col, TableBuilder, Ty, col};
use crate::truth::{AdFact, LineFact, RefundFact, is_not_fee};
use crate::world::Platform;
use crate::write::ExportRow;

const ORDERS: &[Col] = &[
    col("订单号", Ty::Str),
    col("商品id", Ty::Str),
    col("商品", Ty::Str),
    col("商家编码-规格维度", Ty::Str),
    col("商品数量(件)", Ty::I64),
    col("商品总价(元)", Ty::Str),
    col("邮费(元)", Ty::Str),
    col("店铺优惠折扣(元)", Ty::Str),
    col("平台优惠折扣(元)", Ty::Str),
    col("用户实付金额(元)", Ty::Str),
    col("商家实收金额(元)", Ty::Str),
    col("订单状态", Ty::Str),
    col("售后状态", Ty::Str),
    col("订单成交时间", Ty::Ts),
    col("发货时间", Ty::Ts),
    col("确认收货时间", Ty::Ts),
    col("快递单号", Ty::Str),
];

const BILL: &[Col] = &[
    col("商户订单号", Ty::Str),
    col("发生时间", Ty::Ts),
    col("收入金额（+元）", Ty::Money),
    col("支出金额（-元）", Ty::Money),
    col("账务类型", Ty::Str),
    col("业务描述", Ty::Str),
    col("备注", Ty::Str),
];

const ADS: &[Col] = &[
    col("日期", Ty::Str),
    col("推广计划", Ty::Str),
    col("商家编码-规格维度", Ty::Str),
    col("成交花费(元)", Ty::Str),
    col("交易额(元)", Ty::Str),
    col("成交笔数", Ty::I64),
    col("实际投产比", Ty::F64),
];

const SIGNED: &str = "已签收";
const SHIPPED: &str = "已发货，待签收";
const WAITING: &str = "待发货";
const CANCELLED: &str = "已取消";
const NO_AFTERSALE: &str = "无售后或售后取消";

fn unified(status: &str) -> &'static str {
    match status {
        WAITING => "paid",
        SHIPPED => "shipped",
        SIGNED => "completed",
        _ => "closed",
    }
}

#[derive(Clone)]
struct OrderRow<'a> {
    id: String,
    item_id: String,
    title: &'a str,
    sku: &'a str,
    qty: i64,
    goods_c: i64,
    postage_c: i64,
    shop_discount_c: i64,
    platform_discount_c: i64,
    user_paid_c: i64,
    merchant_c: i64,
    status: &'static str,
    aftersale: &'static str,
    created: i64,
    paid: Option<i64>,
    shipped: Option<i64>,
    received: Option<i64>,
    waybill: Option<String>,
}

impl ExportRow for OrderRow<'_> {
    fn at(&self) -> i64 {
        self.created
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.id);
        t.s(&self.item_id);
        t.s(self.title);
        t.s(self.sku);
        t.i(self.qty);
        t.s(&yuan(self.goods_c));
        t.s(&yuan(self.postage_c));
        t.s(&yuan(self.shop_discount_c));
        t.s(&yuan(self.platform_discount_c));
        t.s(&yuan(self.user_paid_c));
        t.s(&yuan(self.merchant_c));
        t.s(self.status);
        t.s(self.aftersale);
        t.ot(self.paid);
        t.ot(self.shipped);
        t.ot(self.received);
        t.os(self.waybill.as_deref());
    }

    /// Exported before the parcel was signed for, or before the after-sale closed.
    fn stale(&self, _rng: &mut ChaCha8Rng) -> Option<Self> {
        if self.status == SIGNED {
            Some(OrderRow {
                status: SHIPPED,
                received: None,
                ..self.clone()
            })
        } else if self.aftersale != NO_AFTERSALE {
            Some(OrderRow {
                aftersale: NO_AFTERSALE,
                ..self.clone()
            })
        } else {
            None
        }
    }
}

#[derive(Clone)]
struct BillRow {
    order: String,
    at: i64,
    income_c: i64,
    expense_c: i64,
    kind: &'static str,
    desc: &'static str,
    memo: &'static str,
}

impl ExportRow for BillRow {
    fn at(&self) -> i64 {
        self.at
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.order);
        t.t(self.at);
        t.d(self.income_c);
        t.d(self.expense_c);
        t.s(self.kind);
        t.s(self.desc);
        t.s(self.memo);
    }

    /// Amounts are part of the bill's key, so a correction can only complete the note.
    fn stale(&self, _rng: &mut ChaCha8Rng) -> Option<Self> {
        (!self.order.is_empty()).then(|| BillRow {
            memo: "待核对",
            ..self.clone()
        })
    }
}

#[derive(Clone)]
struct AdRow<'a> {
    day: usize,
    date: String,
    campaign: Option<&'a str>,
    sku: Option<&'a str>,
    spend_c: Option<i64>,
    sales_c: Option<i64>,
    orders: Option<i64>,
    roi: Option<f64>,
}

fn roi(sales_c: i64, spend_c: i64) -> f64 {
    if spend_c == 0 {
        0.0
    } else {
        (sales_c as f64 / spend_c as f64 * 100.0).round() / 100.0
    }
}

impl ExportRow for AdRow<'_> {
    fn at(&self) -> i64 {
        day_start(self.day)
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.date);
        t.os(self.campaign);
        t.os(self.sku);
        t.os(self.spend_c.map(yuan).as_deref());
        t.os(self.sales_c.map(yuan).as_deref());
        t.oi(self.orders);
        t.of(self.roi);
    }

    fn stale(&self, rng: &mut ChaCha8Rng) -> Option<Self> {
        let spend = self.spend_c.filter(|s| *s > 500)?;
        let spend = spend - between(rng, 1, 300);
        Some(AdRow {
            spend_c: Some(spend),
            roi: self.sales_c.map(|s| roi(s, spend)),
            ..self.clone()
        })
    }

    /// 合计 (totals of the file) and 说明 (a note): part of every real export, never data.
    fn trailer(rows: &[&Self]) -> Vec<Self> {
        let spend: i64 = rows.iter().filter_map(|r| r.spend_c).sum();
        let sales: i64 = rows.iter().filter_map(|r| r.sales_c).sum();
        let orders: i64 = rows.iter().filter_map(|r| r.orders).sum();
        let day = rows.first().map_or(0, |r| r.day);
        vec![
            AdRow {
                day,
                date: "合计".to_string(),
                campaign: None,
                sku: None,
                spend_c: Some(spend),
                sales_c: Some(sales),
                orders: Some(orders),
                roi: Some(roi(sales, spend)),
            },
            AdRow {
                day,
                date: "说明".to_string(),
                campaign: Some("数据说明：成交数据按点击后15天归因统计，次日更新，仅供参考"),
                sku: None,
                spend_c: None,
                sales_c: None,
                orders: None,
                roi: None,
            },
        ]
    }
}

pub(super) fn render(cx: &mut Ctx<'_>, orders: &[Order], rng: &mut ChaCha8Rng) -> Result<()> {
    let (world, shop) = (cx.world, cx.shop);
    let mut rows = Vec::with_capacity(orders.len());
    let mut bill: Vec<BillRow> = Vec::with_capacity(orders.len() * 3);
    for o in orders {
        let Some(l) = o.lines.first() else { continue };
        let day = ymd(o.created);
        let id = format!(
            "{}-{:03}{:012}",
            day.get(2..).unwrap_or(&day),
            shop.index,
            o.seq
        );
        let sku = world.skus.get(l.sku);
        let goods = l.gross_c();
        let shop_discount = l.discount_c;
        let platform_discount = if chance(rng, if o.peak { 0.5 } else { 0.25 }) {
            bp(l.net_c(), between(rng, 300, 1_000)).clamp(1, l.net_c() / 2)
        } else {
            0
        };
        let user_paid = goods + o.postage_c - shop_discount - platform_discount;
        let merchant = user_paid + platform_discount;
        let shipped = o.shipped.filter(|_| o.cancelled.is_none());
        let c = carrier(rng, goods);
        let waybill = parcels(cx, rng, o, &id, shipped, c);
        let status = if o.paid.is_none() || o.cancelled.is_some() {
            CANCELLED
        } else if o.received.is_some() {
            SIGNED
        } else if shipped.is_some() {
            SHIPPED
        } else {
            WAITING
        };
        let refund = l
            .aftersale
            .as_ref()
            .filter(|a| a.kind != AfterSaleKind::Exchange);
        let aftersale = match refund.map(|a| (a.kind, a.outcome)) {
            Some((AfterSaleKind::ReturnRefund, Outcome::Success(_))) => "退货退款成功",
            Some((_, Outcome::Success(_))) => "退款成功",
            Some((_, Outcome::Pending)) => "售后处理中",
            _ => NO_AFTERSALE,
        };

        if let Some(paid) = o.paid {
            cx.truth.line(&LineFact {
                order_id: &id,
                line_id: &id,
                sku: sku.map_or("", |s| s.code.as_str()),
                qty: l.qty,
                unit_c: l.price_c,
                gross_c: goods,
                discount_c: shop_discount,
                subsidy_c: platform_discount,
                shipping_c: o.postage_c,
                status: unified(status),
                ordered_at: paid,
                paid_at: paid,
                completed_at: o.received,
                buyer: None,
                traffic_source: None,
                creator_id: None,
                waybill_no: waybill.as_deref(),
            });
            if let Some(rt) = o.received.filter(|_| o.cancelled.is_none()) {
                let mut push = |amount: i64, kind: &'static str, desc: &'static str| {
                    if amount != 0 {
                        bill.push(BillRow {
                            order: id.clone(),
                            at: rt,
                            income_c: amount.max(0),
                            expense_c: amount.min(0),
                            kind,
                            desc,
                            memo: "",
                        });
                    }
                };
                push(merchant, "交易收入", "订单交易收入");
                push(-bp(merchant, 60), "技术服务费", "技术服务费");
                if chance(rng, 0.12) {
                    let rate = between(rng, 1_000, 2_000);
                    push(-bp(l.net_c(), rate), "多多进宝佣金", "多多进宝推广佣金");
                }
            }
            if let Some((amount, t)) = refund.and_then(|a| a.refunded_at().map(|t| (a.amount_c, t)))
            {
                let amount = amount
                    + if o.cancelled.is_some() {
                        o.postage_c
                    } else {
                        0
                    };
                bill.push(BillRow {
                    order: id.clone(),
                    at: t,
                    income_c: 0,
                    expense_c: -amount,
                    kind: "退款",
                    desc: "售后退款",
                    memo: "",
                });
            }
        }
        rows.push(OrderRow {
            id,
            item_id: format!("6{:03}{:07}", shop.index, l.sku),
            title: sku.map_or("", |s| s.title.as_str()),
            sku: sku.map_or("", |s| s.code.as_str()),
            qty: l.qty,
            goods_c: goods,
            postage_c: o.postage_c,
            shop_discount_c: shop_discount,
            platform_discount_c: platform_discount,
            user_paid_c: user_paid,
            merchant_c: merchant,
            status,
            aftersale,
            created: o.created,
            paid: o.paid,
            shipped,
            received: o.received,
            waybill,
        });
    }

    // 多多推广: the report, and its cash side in the bill (推广费, charged the next night).
    let name = |tag: &str, plan: Plan<'_>| match plan {
        Plan::Shop => format!("多多场景-店铺推广-{tag}"),
        Plan::Sku(s) => format!("多多搜索-{}-{tag}", s.code),
        Plan::Peak(p) => format!("{p}大促推广-{tag}"),
    };
    let (campaigns, days) = ad_plan(cx, orders, 0.12, &name, rng);
    let mut ads = Vec::with_capacity(days.len());
    let mut spend_per_day = std::collections::BTreeMap::<usize, i64>::new();
    for d in &days {
        let Some(c) = campaigns.get(d.campaign) else {
            continue;
        };
        let sku = c
            .sku
            .and_then(|s| world.skus.get(s))
            .map(|s| s.code.as_str());
        cx.truth.ad(&AdFact {
            date: date32(day_start(d.day)),
            campaign: &c.name,
            sku,
            spend_c: d.spend_c,
            impressions: None,
            clicks: None,
            sales_c: d.sales_c,
            orders: d.orders,
        });
        *spend_per_day.entry(d.day).or_default() += d.spend_c;
        ads.push(AdRow {
            day: d.day,
            date: date_of(day_start(d.day)).format("%Y-%m-%d").to_string(),
            campaign: Some(&c.name),
            sku,
            spend_c: Some(d.spend_c),
            sales_c: Some(d.sales_c),
            orders: Some(d.orders),
            roi: Some(roi(d.sales_c, d.spend_c)),
        });
    }
    let offset = shop_offset(shop.index);
    for (day, spend) in spend_per_day {
        bill.push(BillRow {
            order: String::new(),
            at: (day_start(day) + DAY + HOUR + offset).min(CUTOFF),
            income_c: 0,
            expense_c: -spend,
            kind: "推广费",
            desc: "多多推广扣费",
            memo: "",
        });
    }
    bill.sort_by_key(|r| r.at);
    let flows: Vec<(i64, i64)> = bill
        .iter()
        .map(|r| (r.at, r.income_c + r.expense_c))
        .collect();
    for (at, amount) in withdrawals(&flows, offset + 30, rng) {
        bill.push(BillRow {
            order: String::new(),
            at,
            income_c: 0,
            expense_c: -amount,
            kind: "提现",
            desc: "余额提现",
            memo: "提现至对公账户",
        });
    }
    bill.sort_by_key(|r| r.at);
    for r in &bill {
        if is_not_fee(Platform::Pdd, r.kind) {
            if r.kind == "退款" {
                cx.truth.refund(&RefundFact {
                    refund_id: None,
                    order_id: &r.order,
                    line_id: &r.order,
                    amount_c: -r.expense_c,
                    refunded_at: r.at,
                    kind: "unspecified",
                });
            }
        } else {
            let order = (!r.order.is_empty()).then_some(r.order.as_str());
            cx.truth
                .fee(order, None, r.kind, r.income_c + r.expense_c, r.at);
        }
    }

    cx.write("orders", ORDERS, &rows)?;
    cx.write("bill", BILL, &bill)?;
    cx.write("ads", ADS, &ads)?;
    Ok(())
}
