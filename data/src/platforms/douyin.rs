//! Douyin (抖店): 订单明细 `orders` (one row per sub-order), 售后单 `aftersale`, 结算账单
//! `settlement`, 资金流水 `funds`, 巨量千川 `ads`.
//!
//! Douyin exports order amounts as **integer fen**, and 商品金额 is the *unit* price. Orders come
//! through live streams, short videos, the product card or search; stream and video orders are
//! often placed through a creator (达人), who may fund part of the discount and earns a
//! commission. After-sales are their own file (仅退款 / 退货退款 / 换货; an exchange is never a
//! refund, whatever its status says). A sub-order is settled seven days after receipt, net of
//! refunds, with its fees as columns (平台服务费, 佣金, 渠道分成, 招商服务费, 站外推广费); the funds
//! file carries that settlement as cash plus freight insurance (运费险), penalties (违规扣款), the
//! deposit and weekly withdrawals. The funds id column really is spelled 动帐流水号.

use rand_chacha::ChaCha8Rng;

use super::{Ctx, Plan, ad_plan, ad_rows, carrier, parcels, scramble, shop_offset, withdrawals};
use crate::error::Result;
use crate::money::bp;
use crate::shape::{CUTOFF, DAY, HOUR, MINUTE, between, chance, day_start, tag, weighted, ymd};
use crate::sim::{AfterSaleKind, Order, Outcome};
use crate::table::{Col, TableBuilder, Ty, col};
use crate::truth::{LineFact, RefundFact, is_not_fee};
use crate::world::Platform;
use crate::write::ExportRow;

const ORDERS: &[Col] = &[
    col("主订单编号", Ty::Str),
    col("子订单编号", Ty::Str),
    col("货号", Ty::Str),
    col("商品数量", Ty::I64),
    col("商品金额", Ty::I64),
    col("订单应付金额", Ty::I64),
    col("运费", Ty::I64),
    col("平台实际承担优惠金额", Ty::I64),
    col("商家实际承担优惠金额", Ty::I64),
    col("达人实际承担优惠金额", Ty::I64),
    col("订单状态", Ty::Str),
    col("流量来源", Ty::Str),
    col("达人ID", Ty::Str),
    col("订单提交时间", Ty::Ts),
    col("支付完成时间", Ty::Ts),
    col("订单完成时间", Ty::Ts),
];

const AFTERSALE: &[Col] = &[
    col("售后单号", Ty::Str),
    col("订单号", Ty::Str),
    col("商品单号", Ty::Str),
    col("售后类型", Ty::Str),
    col("售后状态", Ty::Str),
    col("售后申请时间", Ty::Ts),
    col("退款时间", Ty::Ts),
    col("退商品金额（元）", Ty::Money),
];

const SETTLEMENT: &[Col] = &[
    col("结算时间", Ty::Ts),
    col("订单号", Ty::Str),
    col("子订单号", Ty::Str),
    col("结算金额", Ty::Money),
    col("订单总价", Ty::Money),
    col("商品总价", Ty::Money),
    col("运费", Ty::Money),
    col("用户实付", Ty::Money),
    col("平台补贴", Ty::Money),
    col("达人补贴", Ty::Money),
    col("平台服务费", Ty::Money),
    col("佣金", Ty::Money),
    col("渠道分成", Ty::Money),
    col("招商服务费", Ty::Money),
    col("站外推广费", Ty::Money),
    col("收入合计", Ty::Money),
    col("支出合计", Ty::Money),
];

const FUNDS: &[Col] = &[
    col("动账时间", Ty::Ts),
    col("动帐流水号", Ty::Str),
    col("动账方向", Ty::Str),
    col("动账金额", Ty::Money),
    col("动账场景", Ty::Str),
    col("计费类型", Ty::Str),
    col("子订单号", Ty::Str),
];

const ADS: &[Col] = &[
    col("日期", Ty::Date),
    col("计划ID", Ty::Str),
    col("货号", Ty::Str),
    col("消耗(元)", Ty::Money),
    col("展示次数", Ty::I64),
    col("点击次数", Ty::I64),
    col("成交金额(元)", Ty::Money),
    col("成交订单数", Ty::I64),
];

/// The fee columns of the settlement, in file order; each non-zero one is a `fees` row.
const FEE_COLUMNS: [&str; 5] = ["平台服务费", "佣金", "渠道分成", "招商服务费", "站外推广费"];

const DONE: &str = "已完成";
const SHIPPED: &str = "已发货";
const WAITING: &str = "待发货";
const CLOSED: &str = "已关闭";
const REFUNDED: &str = "退款成功";

const SOURCES: [&str; 4] = ["直播", "短视频", "商品卡", "搜索"];

fn unified(status: &str) -> &'static str {
    match status {
        WAITING => "paid",
        SHIPPED => "shipped",
        DONE => "completed",
        _ => "closed",
    }
}

#[derive(Clone)]
struct OrderRow<'a> {
    main: String,
    sub: String,
    sku: &'a str,
    qty: i64,
    unit_fen: i64,
    payable_fen: i64,
    freight_fen: i64,
    platform_fen: i64,
    merchant_fen: i64,
    creator_fen: i64,
    status: &'static str,
    source: &'static str,
    creator: Option<String>,
    created: i64,
    paid: Option<i64>,
    completed: Option<i64>,
}

impl ExportRow for OrderRow<'_> {
    fn at(&self) -> i64 {
        self.created
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.main);
        t.s(&self.sub);
        t.s(self.sku);
        t.i(self.qty);
        t.i(self.unit_fen);
        t.i(self.payable_fen);
        t.i(self.freight_fen);
        t.i(self.platform_fen);
        t.i(self.merchant_fen);
        t.i(self.creator_fen);
        t.s(self.status);
        t.s(self.source);
        t.os(self.creator.as_deref());
        t.t(self.created);
        t.ot(self.paid);
        t.ot(self.completed);
    }

    /// Exported before the buyer confirmed receipt.
    fn stale(&self, _rng: &mut ChaCha8Rng) -> Option<Self> {
        (self.status == DONE).then(|| OrderRow {
            status: SHIPPED,
            completed: None,
            ..self.clone()
        })
    }
}

#[derive(Clone)]
struct AftersaleRow {
    id: String,
    main: String,
    sub: String,
    kind: &'static str,
    status: &'static str,
    applied: i64,
    refunded: Option<i64>,
    amount_c: i64,
}

impl ExportRow for AftersaleRow {
    fn at(&self) -> i64 {
        self.applied
    }

    fn put(&self, t: &mut TableBuilder) {
        t.s(&self.id);
        t.s(&self.main);
        t.s(&self.sub);
        t.s(self.kind);
        t.s(self.status);
        t.t(self.applied);
        t.ot(self.refunded);
        t.d(self.amount_c);
    }

    /// Exported while the request was still waiting for the merchant.
    fn stale(&self, _rng: &mut ChaCha8Rng) -> Option<Self> {
        (self.status == REFUNDED && self.kind != "换货").then(|| AftersaleRow {
            status: "待处理",
            refunded: None,
            ..self.clone()
        })
    }
}

#[derive(Clone)]
struct SettleRow {
    at: i64,
    main: String,
    sub: String,
    goods_c: i64,
    freight_c: i64,
    paid_c: i64,
    platform_c: i64,
    creator_c: i64,
    refunded_c: i64,
    fees: [i64; 5],
}

impl SettleRow {
    fn income(&self) -> i64 {
        self.paid_c + self.platform_c + self.creator_c - self.refunded_c
    }

    fn expense(&self) -> i64 {
        self.fees.iter().sum()
    }
}

impl ExportRow for SettleRow {
    fn at(&self) -> i64 {
        self.at
    }

    fn put(&self, t: &mut TableBuilder) {
        t.t(self.at);
        t.s(&self.main);
        t.s(&self.sub);
        t.d(self.income() - self.expense());
        t.d(self.goods_c + self.freight_c);
        t.d(self.goods_c);
        t.d(self.freight_c);
        t.d(self.paid_c);
        t.d(self.platform_c);
        t.d(self.creator_c);
        for f in self.fees {
            t.d(f);
        }
        t.d(self.income());
        t.d(self.expense());
    }

    /// The platform service fee first billed a few cents off (totals follow).
    fn stale(&self, rng: &mut ChaCha8Rng) -> Option<Self> {
        let mut fees = self.fees;
        fees[0] += between(rng, 1, 99);
        Some(SettleRow {
            fees,
            ..self.clone()
        })
    }
}

#[derive(Clone)]
struct FundsRow {
    at: i64,
    id: String,
    income: bool,
    amount_c: i64,
    scene: &'static str,
    billing: &'static str,
    sub: Option<String>,
}

impl ExportRow for FundsRow {
    fn at(&self) -> i64 {
        self.at
    }

    fn put(&self, t: &mut TableBuilder) {
        t.t(self.at);
        t.s(&self.id);
        t.s(if self.income { "入账" } else { "出账" });
        t.d(self.amount_c);
        t.s(self.scene);
        t.s(self.billing);
        t.os(self.sub.as_deref());
    }

    /// A charge first booked a few cents off.
    fn stale(&self, rng: &mut ChaCha8Rng) -> Option<Self> {
        (!is_not_fee(Platform::Douyin, self.scene)).then(|| FundsRow {
            amount_c: self.amount_c + between(rng, 1, 99),
            ..self.clone()
        })
    }
}

/// A funds movement before it gets its 动帐流水号.
struct Movement {
    at: i64,
    amount_c: i64,
    scene: &'static str,
    billing: &'static str,
    sub: Option<String>,
}

pub(super) fn render(cx: &mut Ctx<'_>, orders: &[Order], rng: &mut ChaCha8Rng) -> Result<()> {
    let (world, shop) = (cx.world, cx.shop);
    // The shop's creators and their commission rates (basis points).
    let creators: Vec<(String, i64)> = (0..12u64)
        .map(|i| {
            let id = 1_000_000_000 + scramble(shop.index as u64, i, 9_000_000_000);
            (id.to_string(), between(rng, 1_000, 3_000))
        })
        .collect();
    let mut rows = Vec::with_capacity(orders.len() * 3 / 2);
    let mut aftersales = Vec::new();
    let mut settlement = Vec::new();
    let mut moves: Vec<Movement> = Vec::new();
    let mut aftersale_seq = 0u64;
    for o in orders {
        let main = format!("6{:03}{:012}", shop.index, o.seq);
        let source = SOURCES[weighted(rng, &[0.45, 0.20, 0.25, 0.10]).min(3)];
        let creator = if source == "直播" || source == "短视频" {
            if chance(rng, 0.7) {
                creators.get(between(rng, 0, creators.len() as i64 - 1) as usize)
            } else {
                None
            }
        } else {
            None
        };
        let shipped = o.shipped.filter(|_| o.cancelled.is_none());
        let c = carrier(rng, o.goods_c());
        parcels(cx, rng, o, &main, shipped, c);
        let status = if o.paid.is_none() || o.cancelled.is_some() {
            CLOSED
        } else if o.received.is_some() {
            DONE
        } else if shipped.is_some() {
            SHIPPED
        } else {
            WAITING
        };
        for (k, l) in o.lines.iter().enumerate() {
            let sub = format!("{main}{}", k + 1);
            let sku = world.skus.get(l.sku).map_or("", |s| s.code.as_str());
            let net = l.net_c();
            let freight = if k == 0 { o.postage_c } else { 0 };
            let platform = if chance(rng, if o.peak { 0.5 } else { 0.3 }) {
                bp(net, between(rng, 200, 800))
            } else {
                0
            };
            let creator_disc = if creator.is_some() && chance(rng, 0.3) {
                bp(net, between(rng, 100, 500))
            } else {
                0
            };
            let payable = l.gross_c() + freight - platform - l.discount_c - creator_disc;
            if let Some(paid) = o.paid {
                cx.truth.line(&LineFact {
                    order_id: &main,
                    line_id: &sub,
                    sku,
                    qty: l.qty,
                    unit_c: l.price_c,
                    gross_c: l.gross_c(),
                    discount_c: l.discount_c,
                    subsidy_c: platform + creator_disc,
                    shipping_c: freight,
                    status: unified(status),
                    ordered_at: o.created,
                    paid_at: paid,
                    completed_at: o.received,
                    buyer: None,
                    traffic_source: Some(source),
                    creator_id: creator.map(|c| c.0.as_str()),
                    waybill_no: None,
                });
            }

            // After-sales of the line.
            let mut refunded_c = 0;
            let mut last_refund = None;
            if let Some(a) = &l.aftersale {
                aftersale_seq += 1;
                let id = format!("7{:03}{:012}", shop.index, aftersale_seq);
                let amount = a.amount_c + if o.cancelled.is_some() { freight } else { 0 };
                let (kind, status, refunded) = match (a.kind, a.outcome) {
                    (AfterSaleKind::Exchange, Outcome::Success(_)) => (
                        "换货",
                        if chance(rng, 0.4) {
                            REFUNDED
                        } else {
                            "售后关闭"
                        },
                        None,
                    ),
                    (AfterSaleKind::Exchange, Outcome::Rejected(_)) => ("换货", "售后关闭", None),
                    (AfterSaleKind::Exchange, Outcome::Pending) => ("换货", "待处理", None),
                    (k, outcome) => {
                        let kind = if k == AfterSaleKind::ReturnRefund {
                            "退货退款"
                        } else {
                            "仅退款"
                        };
                        match outcome {
                            Outcome::Success(t) => (kind, REFUNDED, Some(t)),
                            Outcome::Rejected(_) => (kind, "售后关闭", None),
                            Outcome::Pending => (kind, "待处理", None),
                        }
                    }
                };
                if let Some(t) = refunded {
                    refunded_c = amount;
                    last_refund = Some(t);
                    cx.truth.refund(&RefundFact {
                        refund_id: Some(&id),
                        order_id: &main,
                        line_id: &sub,
                        amount_c: amount,
                        refunded_at: t,
                        kind: if kind == "退货退款" {
                            "return_refund"
                        } else {
                            "refund_only"
                        },
                    });
                }
                aftersales.push(AftersaleRow {
                    id,
                    main: main.clone(),
                    sub: sub.clone(),
                    kind,
                    status,
                    applied: a.applied,
                    refunded,
                    amount_c: amount,
                });
            }

            // Settlement seven days after receipt (after any refund), unless fully refunded.
            if let (None, Some(received)) = (o.cancelled, o.received) {
                let due = (received + 7 * DAY).max(last_refund.map_or(0, |t| t + HOUR));
                let at = due + between(rng, 0, 3 * HOUR);
                let base = net - refunded_c;
                if at <= CUTOFF && base > 0 {
                    let fees = [
                        bp(base, 500),
                        creator.map_or(0, |c| bp(base, c.1)),
                        if creator.is_none() && chance(rng, 0.1) {
                            bp(base, between(rng, 100, 300))
                        } else {
                            0
                        },
                        if creator.is_some() && chance(rng, 0.3) {
                            bp(base, between(rng, 100, 300))
                        } else {
                            0
                        },
                        if chance(rng, 0.03) {
                            bp(base, between(rng, 500, 1_000))
                        } else {
                            0
                        },
                    ];
                    for (name, fee) in FEE_COLUMNS.iter().zip(fees) {
                        if fee != 0 {
                            cx.truth.fee(Some(&main), Some(&sub), name, -fee, at);
                        }
                    }
                    let row = SettleRow {
                        at,
                        main: main.clone(),
                        sub: sub.clone(),
                        goods_c: l.gross_c(),
                        freight_c: freight,
                        paid_c: payable,
                        platform_c: platform,
                        creator_c: creator_disc,
                        refunded_c,
                        fees,
                    };
                    let amount = row.income() - row.expense();
                    if amount != 0 {
                        moves.push(Movement {
                            at,
                            amount_c: amount,
                            scene: "订单结算",
                            billing: "货款",
                            sub: Some(sub.clone()),
                        });
                    }
                    settlement.push(row);
                }
            }
            if let (0, Some(at)) = (k, shipped)
                && chance(rng, 0.1)
            {
                moves.push(Movement {
                    at: (at + between(rng, MINUTE, 30 * MINUTE)).min(CUTOFF),
                    amount_c: -between(rng, 30, 150),
                    scene: "运费险",
                    billing: "运费险",
                    sub: Some(sub.clone()),
                });
            }
            rows.push(OrderRow {
                main: main.clone(),
                sub,
                sku,
                qty: l.qty,
                unit_fen: l.price_c,
                payable_fen: payable,
                freight_fen: freight,
                platform_fen: platform,
                merchant_fen: l.discount_c,
                creator_fen: creator_disc,
                status,
                source,
                creator: creator.map(|c| c.0.clone()),
                created: o.created,
                paid: o.paid,
                completed: o.received,
            });
        }
    }
    settlement.sort_by_key(|r| r.at);

    // Shop-level movements: the deposit, penalties now and then, weekly withdrawals.
    let offset = shop_offset(shop.index);
    moves.push(Movement {
        at: day_start(2) + 11 * HOUR + offset,
        amount_c: -2_000_000,
        scene: "保证金",
        billing: "保证金",
        sub: None,
    });
    for m in 0..12usize {
        if chance(rng, 0.3) {
            moves.push(Movement {
                at: day_start(m * 30 + between(rng, 0, 27) as usize) + 15 * HOUR + offset,
                amount_c: -between(rng, 5_000, 50_000),
                scene: "违规扣款",
                billing: "违规处罚",
                sub: None,
            });
        }
    }
    moves.sort_by_key(|m| m.at);
    let flows: Vec<(i64, i64)> = moves.iter().map(|m| (m.at, m.amount_c)).collect();
    for (at, amount) in withdrawals(&flows, offset + 45, rng) {
        moves.push(Movement {
            at,
            amount_c: -amount,
            scene: "提现",
            billing: "提现",
            sub: None,
        });
    }
    moves.sort_by_key(|m| m.at);
    let mut funds = Vec::with_capacity(moves.len());
    for (i, m) in moves.into_iter().enumerate() {
        let row = FundsRow {
            at: m.at,
            id: format!("{}{:03}{:09}", ymd(m.at), shop.index, i + 1),
            income: m.amount_c > 0,
            amount_c: m.amount_c.abs(),
            scene: m.scene,
            billing: m.billing,
            sub: m.sub,
        };
        if !is_not_fee(Platform::Douyin, row.scene) {
            let signed = if row.income {
                row.amount_c
            } else {
                -row.amount_c
            };
            cx.truth
                .fee(None, row.sub.as_deref(), row.scene, signed, row.at);
        }
        funds.push(row);
    }

    // 巨量千川 plans are numeric ids.
    let name = |t: &str, _plan: Plan<'_>| format!("17{t}{:06}", scramble(tag(t), 7, 1_000_000));
    let (campaigns, days) = ad_plan(cx, orders, 0.15, &name, rng);
    let ads = ad_rows(cx, &campaigns, &days, &world.skus);

    cx.write("orders", ORDERS, &rows)?;
    cx.write("aftersale", AFTERSALE, &aftersales)?;
    cx.write("settlement", SETTLEMENT, &settlement)?;
    cx.write("funds", FUNDS, &funds)?;
    cx.write("ads", ADS, &ads)?;
    Ok(())
}
