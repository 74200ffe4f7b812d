//! The platform-neutral life of an order.
//!
//! A shop's year is simulated once, the same way on every platform: how many orders each day
//! (day weights × the shop's size), when each is placed, which SKUs (Zipf over the shop's
//! assortment), quantities, list prices and seller discounts, whether it is paid, cancelled
//! after payment, shipped, received, and which lines see an after-sale request (refund only,
//! return and refund, or exchange on Douyin) with what outcome. Everything after [`CUTOFF`] has
//! not happened yet: such orders stay paid or shipped, such refunds stay pending.
//!
//! The platform modules then *render* these orders in each platform's own vocabulary (ids,
//! statuses, where postage and subsidies live, which money files record what) and derive the
//! unified truth from the very rows they export.

use rand_chacha::ChaCha8Rng;

use crate::money::retail;
use crate::shape::{
    CUTOFF, DAYS, HOUR, MINUTE, between, chance, day_start, hours, is_midnight_rush, is_peak,
    time_of_day, uniform, weighted,
};
use crate::world::{Platform, Shop, World};

/// How orders behave on one platform.
#[derive(Debug)]
pub(crate) struct Profile {
    /// Probabilities of 1, 2, 3 … lines per order.
    pub(crate) lines: &'static [f64],
    /// Platform price as a percentage of the list price.
    pub(crate) price_pct: i64,
    pub(crate) p_unpaid: f64,
    pub(crate) p_cancel: f64,
    /// Probability that a shipped line gets an after-sale request.
    pub(crate) p_aftersale: f64,
    /// Share of after-sale requests that are exchanges (Douyin only).
    pub(crate) p_exchange: f64,
    /// Probability of a seller discount on a line: normal days, promotion days.
    pub(crate) p_discount: (f64, f64),
    /// Hours from payment to shipment.
    pub(crate) ship_hours: (f64, f64),
    /// Days from shipment to receipt (buyer confirmation or automatic).
    pub(crate) deliver_days: (f64, f64),
    /// Postage is charged with this probability on orders below this many cents.
    pub(crate) postage: (i64, f64),
}

const TMALL: Profile = Profile {
    lines: &[0.68, 0.20, 0.08, 0.04],
    price_pct: 100,
    p_unpaid: 0.04,
    p_cancel: 0.02,
    p_aftersale: 0.09,
    p_exchange: 0.0,
    p_discount: (0.35, 0.80),
    ship_hours: (2.0, 48.0),
    deliver_days: (2.0, 9.0),
    postage: (4_900, 0.5),
};

const JD: Profile = Profile {
    lines: &[0.72, 0.18, 0.07, 0.03],
    price_pct: 100,
    p_unpaid: 0.03,
    p_cancel: 0.02,
    p_aftersale: 0.065,
    p_exchange: 0.0,
    p_discount: (0.30, 0.70),
    ship_hours: (1.0, 20.0),
    deliver_days: (1.0, 4.0),
    postage: (9_900, 0.4),
};

const PDD: Profile = Profile {
    lines: &[1.0],
    price_pct: 85,
    p_unpaid: 0.05,
    p_cancel: 0.025,
    p_aftersale: 0.13,
    p_exchange: 0.0,
    p_discount: (0.25, 0.60),
    ship_hours: (4.0, 48.0),
    deliver_days: (2.0, 8.0),
    postage: (i64::MAX, 0.03),
};

const DOUYIN: Profile = Profile {
    lines: &[0.75, 0.17, 0.06, 0.02],
    price_pct: 92,
    p_unpaid: 0.06,
    p_cancel: 0.03,
    p_aftersale: 0.22,
    p_exchange: 0.08,
    p_discount: (0.40, 0.80),
    ship_hours: (6.0, 72.0),
    deliver_days: (2.0, 8.0),
    postage: (3_900, 0.3),
};

pub(crate) fn profile(platform: Platform) -> &'static Profile {
    match platform {
        Platform::Tmall => &TMALL,
        Platform::Jd => &JD,
        Platform::Pdd => &PDD,
        Platform::Douyin => &DOUYIN,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterSaleKind {
    RefundOnly,
    ReturnRefund,
    Exchange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Refunded (or exchanged) at this time.
    Success(i64),
    /// Rejected or withdrawn at this time.
    Rejected(i64),
    /// Not decided at the cutoff.
    Pending,
}

#[derive(Debug, Clone)]
pub(crate) struct AfterSale {
    pub(crate) kind: AfterSaleKind,
    pub(crate) applied: i64,
    pub(crate) outcome: Outcome,
    /// The whole line (gross − seller discount) comes back.
    pub(crate) full: bool,
    /// Amount requested (= refunded on success), in cents.
    pub(crate) amount_c: i64,
}

impl AfterSale {
    /// The refund time of a successful refund (exchanges are not refunds).
    pub(crate) fn refunded_at(&self) -> Option<i64> {
        match (self.kind, self.outcome) {
            (AfterSaleKind::Exchange, _) => None,
            (_, Outcome::Success(t)) => Some(t),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Index into [`World::skus`].
    pub(crate) sku: usize,
    pub(crate) qty: i64,
    /// Unit price on this platform, cents.
    pub(crate) price_c: i64,
    /// Seller-funded discount of the line, cents.
    pub(crate) discount_c: i64,
    pub(crate) aftersale: Option<AfterSale>,
}

impl Line {
    pub(crate) fn gross_c(&self) -> i64 {
        self.price_c * self.qty
    }

    /// What the seller sells the line for: gross − seller discount.
    pub(crate) fn net_c(&self) -> i64 {
        self.gross_c() - self.discount_c
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    /// 1-based sequence within the shop, in creation order; the basis of every id.
    pub(crate) seq: u64,
    pub(crate) peak: bool,
    pub(crate) created: i64,
    pub(crate) paid: Option<i64>,
    /// Cancelled after payment, before shipment: every line is refunded in full then.
    pub(crate) cancelled: Option<i64>,
    pub(crate) shipped: Option<i64>,
    pub(crate) received: Option<i64>,
    pub(crate) buyer: u64,
    /// Postage charged to the buyer, cents.
    pub(crate) postage_c: i64,
    pub(crate) lines: Vec<Line>,
}

impl Order {
    pub(crate) fn goods_c(&self) -> i64 {
        self.lines.iter().map(Line::net_c).sum()
    }
}

/// Simulates a shop's year of orders, in creation order.
pub(crate) fn simulate(world: &World, shop: &Shop, rng: &mut ChaCha8Rng) -> Vec<Order> {
    let p = profile(shop.platform);
    let lsum: f64 = p.lines.iter().sum();
    let avg_lines: f64 = p
        .lines
        .iter()
        .enumerate()
        .map(|(k, w)| (k + 1) as f64 * w)
        .sum::<f64>()
        / lsum.max(f64::MIN_POSITIVE);
    let wsum: f64 = world.day_weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let mut orders = Vec::new();
    let mut buyers = 0u64;
    for day in 0..DAYS {
        let w = world.day_weights.get(day).copied().unwrap_or(1.0);
        let expected = shop.lines / avg_lines.max(1.0) * w / wsum;
        let n = expected.floor() as usize + usize::from(chance(rng, expected.fract()));
        let rush = is_midnight_rush(day);
        let mut times: Vec<i64> = (0..n)
            .map(|_| day_start(day) + time_of_day(rng, rush))
            .collect();
        times.sort_unstable();
        for created in times {
            let seq = orders.len() as u64 + 1;
            // A quarter of orders come from returning buyers.
            let buyer = if buyers > 0 && chance(rng, 0.25) {
                between(rng, 1, buyers as i64) as u64
            } else {
                buyers += 1;
                buyers
            };
            if let Some(o) = order(world, shop, p, day, seq, created, buyer, rng) {
                orders.push(o);
            }
        }
    }
    orders
}

#[allow(clippy::too_many_arguments)]
fn order(
    world: &World,
    shop: &Shop,
    p: &Profile,
    day: usize,
    seq: u64,
    created: i64,
    buyer: u64,
    rng: &mut ChaCha8Rng,
) -> Option<Order> {
    let peak = is_peak(day);
    let want = weighted(rng, p.lines) + 1;
    let mut lines: Vec<Line> = Vec::with_capacity(want);
    let mut attempts = 0;
    while lines.len() < want && attempts < want * 8 {
        attempts += 1;
        let Some(i) = shop.popularity.sample(rng) else {
            break;
        };
        let Some(&sku) = shop.assortment.get(i) else {
            break;
        };
        if lines.iter().any(|l| l.sku == sku) {
            continue;
        }
        let Some(s) = world.skus.get(sku) else { break };
        let qty = [1, 2, 3, 4, 5, 6][weighted(rng, &[0.76, 0.15, 0.05, 0.02, 0.01, 0.01])];
        let price_c = retail(s.price_c * p.price_pct / 100);
        let gross = price_c * qty;
        let p_disc = if peak { p.p_discount.1 } else { p.p_discount.0 };
        let discount_c = if gross >= 500 && chance(rng, p_disc) {
            // 5–25 % off, whole yuan on larger lines, never more than 40 %.
            let raw = (gross as f64 * uniform(rng, 0.05, 0.25)) as i64;
            let rounded = if raw >= 1_000 { raw / 100 * 100 } else { raw };
            rounded.clamp(1, gross * 2 / 5)
        } else {
            0
        };
        lines.push(Line {
            sku,
            qty,
            price_c,
            discount_c,
            aftersale: None,
        });
    }
    if lines.is_empty() {
        return None;
    }
    let goods: i64 = lines.iter().map(Line::net_c).sum();
    let postage_c = if goods < p.postage.0 && chance(rng, p.postage.1) {
        [600, 800, 1_000][weighted(rng, &[0.5, 0.3, 0.2])]
    } else {
        0
    };
    let mut o = Order {
        seq,
        peak,
        created,
        paid: None,
        cancelled: None,
        shipped: None,
        received: None,
        buyer,
        postage_c,
        lines,
    };
    if chance(rng, p.p_unpaid) {
        return Some(o);
    }
    let delay = match weighted(rng, &[0.70, 0.25, 0.05]) {
        0 => between(rng, 10, 120),
        1 => between(rng, 2 * MINUTE, 30 * MINUTE),
        _ => between(rng, 30 * MINUTE, 6 * HOUR),
    };
    // Sales stay within 2025: a New Year's Eve order is paid before midnight.
    let paid = (created + delay).min(day_start(DAYS) - 1).max(created);
    o.paid = Some(paid);
    if chance(rng, p.p_cancel) {
        let at = (paid + between(rng, 10 * MINUTE, 36 * HOUR)).min(CUTOFF - 1);
        o.cancelled = Some(at);
        let refunded = (at + between(rng, MINUTE, 20 * MINUTE)).min(CUTOFF - 1);
        for l in &mut o.lines {
            l.aftersale = Some(AfterSale {
                kind: AfterSaleKind::RefundOnly,
                applied: at,
                outcome: Outcome::Success(refunded),
                full: true,
                amount_c: l.net_c(),
            });
        }
        return Some(o);
    }
    let slow = if peak { 1.8 } else { 1.0 };
    // About one order in a hundred is a presale or out of stock and ships weeks later.
    let delay = if chance(rng, 0.01) {
        hours(rng, 5.0 * 24.0, 20.0 * 24.0)
    } else {
        (hours(rng, p.ship_hours.0, p.ship_hours.1) as f64 * slow) as i64
    };
    let shipped = paid + delay;
    if shipped > CUTOFF {
        return Some(o);
    }
    o.shipped = Some(shipped);
    let received = shipped + hours(rng, p.deliver_days.0 * 24.0, p.deliver_days.1 * 24.0);
    if received <= CUTOFF {
        o.received = Some(received);
    }
    for l in &mut o.lines {
        if !chance(rng, p.p_aftersale) {
            continue;
        }
        let applied = shipped + hours(rng, 12.0, 12.0 * 24.0);
        if applied > CUTOFF {
            continue;
        }
        let kind = if chance(rng, p.p_exchange) {
            AfterSaleKind::Exchange
        } else if chance(rng, 0.55) {
            AfterSaleKind::ReturnRefund
        } else {
            AfterSaleKind::RefundOnly
        };
        let decided = applied + hours(rng, 2.0, 96.0);
        let outcome = if decided > CUTOFF {
            Outcome::Pending
        } else if chance(rng, 0.88) {
            Outcome::Success(decided)
        } else {
            Outcome::Rejected(decided)
        };
        let net = l.net_c();
        let full = kind != AfterSaleKind::RefundOnly || chance(rng, 0.35);
        let amount_c = if full {
            net
        } else {
            ((net as f64 * uniform(rng, 0.10, 0.60)) as i64).clamp(1, net.max(1))
        };
        l.aftersale = Some(AfterSale {
            kind,
            applied,
            outcome,
            full: amount_c == net,
            amount_c,
        });
    }
    Some(o)
}
