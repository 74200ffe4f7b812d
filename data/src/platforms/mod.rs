//! Platform renderers: one shop's simulated year, written the way its platform exports it.
//!
//! [`run_shop`] simulates the shop's orders ([`crate::sim`]) and hands them to the renderer of
//! its platform, which
//! 1. builds the rows of every export kind of that platform with their final values,
//! 2. derives the unified truth (order lines, refunds, fees, ad spend) from those same rows,
//!    following docs/unified.md column by column,
//! 3. writes the kinds month by month through [`crate::write`], which adds re-deliveries and
//!    corrections,
//! 4. records the parcels it shipped or took back (the carrier's waybills, written later with
//!    the company files) and the quantities sold (which drive purchasing).
//!
//! What is shared between platforms lives here: ad campaigns, carriers and waybills, weekly
//! withdrawals, the daily ad report row.

mod douyin;
mod jd;
mod pdd;
pub(crate) mod tmall;

use std::collections::BTreeMap;

use datafusion::arrow::record_batch::RecordBatch;
use rand_chacha::ChaCha8Rng;

use crate::company::Waybill;
use crate::error::Result;
use crate::shape::{
    CUTOFF, DAY, DAYS, HOUR, between, chance, date32, day_start, hours, mix, month_of, rng_for,
    tag, uniform, weighted,
};
use crate::sim::{AfterSaleKind, Order, Outcome, simulate};
use crate::table::Col;
use crate::table::TableBuilder;
use crate::truth::{AdFact, ShopTruth};
use crate::world::{Platform, Shop, Sku, World};
use crate::write::{ExportRow, Kind, Sink, Tally, write_export};

/// What one shop contributes beyond its export files.
pub(crate) struct ShopOutput {
    /// `[order_lines, refunds, fees, ad_spend]` rows of the shop.
    pub(crate) truth: [RecordBatch; 4],
    pub(crate) waybills: Vec<Waybill>,
    /// Units sold per SKU and month of 2025 (paid, not cancelled), by payment month.
    pub(crate) sold: BTreeMap<usize, [i64; 12]>,
    /// Orders shipped per month of 2025 (drives packaging material).
    pub(crate) shipped: [i64; 12],
    pub(crate) tally: Tally,
}

/// One shop's rendering context.
pub(crate) struct Ctx<'a> {
    pub(crate) world: &'a World,
    pub(crate) shop: &'a Shop,
    sink: &'a Sink,
    seed: u64,
    pub(crate) tally: Tally,
    pub(crate) truth: ShopTruth,
    pub(crate) waybills: Waybills,
}

impl Ctx<'_> {
    /// Writes one export kind of the shop.
    pub(crate) fn write<R: ExportRow>(
        &mut self,
        name: &'static str,
        cols: &'static [Col],
        rows: &[R],
    ) -> Result<()> {
        let kind = Kind {
            sink: self.sink,
            shop: self.shop,
            seed: self.seed,
            name,
            cols,
            day_apart: self.world.day_apart,
        };
        write_export(&kind, rows, &mut self.tally)
    }

    pub(crate) fn sku(&self, i: usize) -> Option<&Sku> {
        self.world.skus.get(i)
    }

    /// Parcel weight of some lines, grams, with 80 g of packaging.
    pub(crate) fn grams<'l>(&self, lines: impl Iterator<Item = (&'l usize, i64)>) -> i64 {
        80 + lines
            .map(|(s, q)| self.sku(*s).map_or(0, |k| k.grams) * q)
            .sum::<i64>()
    }
}

/// Simulates and renders one shop.
pub(crate) fn run_shop(world: &World, shop: &Shop, sink: &Sink, seed: u64) -> Result<ShopOutput> {
    let mut rng = rng_for(seed, &[tag("shop"), shop.index as u64]);
    let orders = simulate(world, shop, &mut rng);
    let mut cx = Ctx {
        world,
        shop,
        sink,
        seed,
        tally: Tally::default(),
        truth: ShopTruth::new(shop.platform, &shop.id)?,
        waybills: Waybills::new(shop.index),
    };
    match shop.platform {
        Platform::Tmall => tmall::render(&mut cx, &orders, &mut rng)?,
        Platform::Jd => jd::render(&mut cx, &orders, &mut rng)?,
        Platform::Pdd => pdd::render(&mut cx, &orders, &mut rng)?,
        Platform::Douyin => douyin::render(&mut cx, &orders, &mut rng)?,
    }
    let (sold, shipped) = demand(&orders);
    Ok(ShopOutput {
        truth: cx.truth.finish()?,
        waybills: cx.waybills.rows,
        sold,
        shipped,
        tally: cx.tally,
    })
}

fn month_index(secs: i64) -> Option<usize> {
    let m = month_of(secs);
    (m / 100 == 2025).then(|| (m % 100) as usize - 1)
}

fn demand(orders: &[Order]) -> (BTreeMap<usize, [i64; 12]>, [i64; 12]) {
    let mut sold: BTreeMap<usize, [i64; 12]> = BTreeMap::new();
    let mut shipped = [0i64; 12];
    for o in orders {
        if o.cancelled.is_some() {
            continue;
        }
        if let Some(m) = o.paid.and_then(month_index) {
            for l in &o.lines {
                if let Some(slot) = sold.entry(l.sku).or_insert([0; 12]).get_mut(m) {
                    *slot += l.qty;
                }
            }
        }
        if let Some(slot) = o
            .shipped
            .and_then(month_index)
            .and_then(|m| shipped.get_mut(m))
        {
            *slot += 1;
        }
    }
    (sold, shipped)
}

// ---------------------------------------------------------------------------------------------
// Carriers and waybills

/// A parcel carrier and its tariff (first kilogram, each further kilogram).
#[derive(Debug)]
pub(crate) struct Carrier {
    pub(crate) name: &'static str,
    prefix: &'static str,
    first_c: i64,
    extra_c: i64,
}

const CARRIERS: [Carrier; 5] = [
    Carrier {
        name: "中通快递",
        prefix: "78",
        first_c: 320,
        extra_c: 150,
    },
    Carrier {
        name: "圆通速递",
        prefix: "YT",
        first_c: 300,
        extra_c: 150,
    },
    Carrier {
        name: "韵达快递",
        prefix: "43",
        first_c: 300,
        extra_c: 140,
    },
    Carrier {
        name: "顺丰速运",
        prefix: "SF",
        first_c: 1_200,
        extra_c: 500,
    },
    Carrier {
        name: "极兔速递",
        prefix: "JT",
        first_c: 280,
        extra_c: 130,
    },
];
const CARRIER_SHARE: [f64; 5] = [0.40, 0.25, 0.20, 0.10, 0.05];

/// JD ships its own parcels.
pub(crate) const JD_LOGISTICS: Carrier = Carrier {
    name: "京东物流",
    prefix: "JDVA",
    first_c: 800,
    extra_c: 300,
};

/// A carrier for a merchant-shipped parcel (pricier goods go by 顺丰 more often).
pub(crate) fn carrier(rng: &mut ChaCha8Rng, value_c: i64) -> &'static Carrier {
    let mut share = CARRIER_SHARE;
    if value_c > 50_000 {
        share[3] = 0.5;
    }
    CARRIERS.get(weighted(rng, &share)).unwrap_or(&CARRIERS[0])
}

/// The waybills of one shop's parcels; numbers carry the shop index so they are unique.
pub(crate) struct Waybills {
    shop_index: usize,
    seq: u64,
    pub(crate) rows: Vec<Waybill>,
}

impl Waybills {
    fn new(shop_index: usize) -> Self {
        Waybills {
            shop_index,
            seq: 0,
            rows: Vec::new(),
        }
    }

    /// Records a parcel and returns its waybill number.
    pub(crate) fn add(
        &mut self,
        c: &Carrier,
        order_id: Option<&str>,
        at: i64,
        grams: i64,
        outbound: bool,
    ) -> String {
        self.seq += 1;
        let no = format!("{}{:03}{:010}", c.prefix, self.shop_index, self.seq);
        // Billed by the started 100 g, tariff by the started kilogram beyond the first.
        let billed_g = (grams.max(1) + 99) / 100 * 100;
        let extra_kg = ((billed_g - 1_000).max(0) + 999) / 1_000;
        self.rows.push(Waybill {
            no: no.clone(),
            carrier: c.name,
            order_id: order_id.map(str::to_string),
            at,
            grams: billed_g,
            cost_c: c.first_c + extra_kg * c.extra_c,
            outbound,
        });
        no
    }
}

/// Records the parcels of an order: the outbound parcel when it shipped, a return parcel for
/// every successful return-and-refund, and now and then a re-shipment without an order number
/// (补发, a carrier bill the platforms never see). Returns the outbound waybill number.
pub(crate) fn parcels(
    cx: &mut Ctx<'_>,
    rng: &mut ChaCha8Rng,
    o: &Order,
    order_id: &str,
    shipped: Option<i64>,
    c: &Carrier,
) -> Option<String> {
    let at = shipped?;
    let grams = cx.grams(o.lines.iter().map(|l| (&l.sku, l.qty)));
    let no = cx.waybills.add(c, Some(order_id), at, grams, true);
    for l in &o.lines {
        let Some(a) = &l.aftersale else { continue };
        if a.kind == AfterSaleKind::ReturnRefund && matches!(a.outcome, Outcome::Success(_)) {
            let g = cx.grams(std::iter::once((&l.sku, l.qty)));
            let back = (a.applied + hours(rng, 2.0, 24.0)).min(CUTOFF);
            cx.waybills.add(c, Some(order_id), back, g, false);
        }
    }
    if chance(rng, 0.004) {
        let again = (at + 3 * DAY).min(CUTOFF);
        cx.waybills.add(c, None, again, grams, true);
    }
    Some(no)
}

// ---------------------------------------------------------------------------------------------
// Cash

/// Seconds added to a shop's scheduled movements (deposits, withdrawals, ad charges): distinct
/// for every shop, so that key-less rows (PDD's bill) never collide across shops.
pub(crate) fn shop_offset(shop_index: usize) -> i64 {
    let i = i64::try_from(shop_index).unwrap_or(0);
    (i % 50) * 60 + i / 50
}

/// Weekly withdrawals (提现) of the balance built by `flows` (time, signed cents; sorted by
/// time): Mondays around 10:00, 80–95 % of what is there. Returns (time, amount withdrawn).
pub(crate) fn withdrawals(
    flows: &[(i64, i64)],
    offset: i64,
    rng: &mut ChaCha8Rng,
) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut balance = 0i64;
    let mut it = flows.iter().peekable();
    // 2025-01-06 is the first Monday.
    let mut t = day_start(5) + 10 * HOUR + offset;
    while t <= CUTOFF {
        while let Some((at, amount)) = it.peek() {
            if *at > t {
                break;
            }
            balance += amount;
            it.next();
        }
        if balance >= 10_000 {
            let w = (balance as f64 * uniform(rng, 0.80, 0.95)) as i64;
            out.push((t, w));
            balance -= w;
        }
        t += 7 * DAY;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Advertising

/// An ad campaign (plan) of a shop: SKU-level or shop-level.
pub(crate) struct Campaign {
    pub(crate) name: String,
    pub(crate) sku: Option<usize>,
}

/// One day of one campaign.
pub(crate) struct AdDay {
    pub(crate) day: usize,
    pub(crate) campaign: usize,
    pub(crate) spend_c: i64,
    pub(crate) impressions: i64,
    pub(crate) clicks: i64,
    pub(crate) sales_c: i64,
    pub(crate) orders: i64,
}

/// What a campaign promotes; the renderer turns it into the platform's plan name.
pub(crate) enum Plan<'s> {
    /// A shop-level plan (no SKU in the report).
    Shop,
    /// A plan pushing one SKU.
    Sku(&'s Sku),
    /// A promotion-only plan ("618", "双11").
    Peak(&'static str),
}

/// The shop's campaigns and their daily results. Total spend is about `ratio` of the shop's
/// paid gross sales and follows the day weights (promotion days spend more); two extra plans
/// run only before 618 and 双11. `name` names a campaign from its plan and a tag unique to the
/// shop and campaign (`<shop index:03><campaign:02>`), so that names — part of the report's
/// natural key, date + campaign + SKU — are unique across all shops, not only within one.
pub(crate) fn ad_plan(
    cx: &Ctx<'_>,
    orders: &[Order],
    ratio: f64,
    name: &dyn Fn(&str, Plan<'_>) -> String,
    rng: &mut ChaCha8Rng,
) -> (Vec<Campaign>, Vec<AdDay>) {
    let (mut gmv, mut paid) = (0i64, 0i64);
    for o in orders.iter().filter(|o| o.paid.is_some()) {
        gmv += o.lines.iter().map(|l| l.gross_c()).sum::<i64>();
        paid += 1;
    }
    let aov = (gmv / paid.max(1)).max(1_000);
    let regular = ((3.0 + 6.0 * cx.world.scale.sqrt()).round() as usize).clamp(2, 12);
    let top = cx.shop.assortment.len().min(20);
    // (first day, last day, share, cpm yuan, ctr, roas) per campaign
    let mut plans = Vec::new();
    let mut campaigns = Vec::new();
    for c in 0..regular + 2 {
        let sku = match c {
            0 => None,
            1 => cx.shop.assortment.first().copied(),
            _ if c >= regular => None,
            _ if chance(rng, 0.6) => cx
                .shop
                .assortment
                .get(between(rng, 0, top as i64 - 1) as usize)
                .copied(),
            _ => None,
        };
        let (first, last) = if c == regular {
            (139, 168) // 2025-05-20 .. 06-18
        } else if c == regular + 1 {
            (292, 314) // 2025-10-20 .. 11-11
        } else if c < 2 || chance(rng, 0.25) {
            (0, DAYS - 1)
        } else {
            let first = between(rng, 0, 330) as usize;
            (
                first,
                (first + between(rng, 30, 200) as usize).min(DAYS - 1),
            )
        };
        plans.push((
            first,
            last,
            uniform(rng, 0.5, 1.5),
            uniform(rng, 15.0, 60.0),
            uniform(rng, 0.008, 0.04),
            uniform(rng, 1.5, 4.5),
        ));
        let plan = if c == regular {
            Plan::Peak("618")
        } else if c == regular + 1 {
            Plan::Peak("双11")
        } else {
            match sku.and_then(|s| cx.world.skus.get(s)) {
                Some(s) => Plan::Sku(s),
                None => Plan::Shop,
            }
        };
        let tag = format!("{:03}{:02}", cx.shop.index, c + 1);
        campaigns.push(Campaign {
            name: name(&tag, plan),
            sku,
        });
    }
    let weight_total: f64 = plans
        .iter()
        .map(|(f, l, share, ..)| {
            share
                * (*f..=*l)
                    .map(|d| cx.world.day_weights.get(d).copied().unwrap_or(0.0))
                    .sum::<f64>()
        })
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let budget = gmv as f64 * ratio;
    let mut days = Vec::new();
    for day in 0..DAYS {
        let w = cx.world.day_weights.get(day).copied().unwrap_or(0.0);
        for (c, (first, last, share, cpm, ctr, roas)) in plans.iter().enumerate() {
            if day < *first || day > *last {
                continue;
            }
            let spend_c = (budget * share * w / weight_total * uniform(rng, 0.75, 1.25)) as i64;
            if spend_c < 100 {
                continue;
            }
            let impressions = (spend_c as f64 * 10.0 / cpm * uniform(rng, 0.9, 1.1)) as i64;
            let clicks = (impressions as f64 * ctr * uniform(rng, 0.8, 1.2)).round() as i64;
            // Whole orders (stochastic rounding keeps the expected ROAS on small campaigns),
            // each worth about an average order.
            let expected = spend_c as f64 * roas * uniform(rng, 0.6, 1.4) / aov as f64;
            let orders = expected.floor() as i64 + i64::from(chance(rng, expected.fract()));
            let sales_c = (orders as f64 * aov as f64 * uniform(rng, 0.7, 1.3)) as i64;
            days.push(AdDay {
                day,
                campaign: c,
                spend_c,
                impressions,
                clicks,
                sales_c,
                orders,
            });
        }
    }
    (campaigns, days)
}

/// A row of the tmall, JD and Douyin daily ad reports (same shape, different headers).
#[derive(Clone)]
pub(crate) struct AdRow<'a> {
    pub(crate) day: usize,
    pub(crate) campaign: &'a str,
    pub(crate) sku: Option<&'a str>,
    pub(crate) spend_c: i64,
    pub(crate) impressions: i64,
    pub(crate) clicks: i64,
    pub(crate) sales_c: i64,
    pub(crate) orders: i64,
}

impl ExportRow for AdRow<'_> {
    fn at(&self) -> i64 {
        day_start(self.day)
    }

    fn put(&self, t: &mut TableBuilder) {
        t.date(date32(day_start(self.day)));
        t.s(self.campaign);
        t.os(self.sku);
        t.d(self.spend_c);
        t.i(self.impressions);
        t.i(self.clicks);
        t.d(self.sales_c);
        t.i(self.orders);
    }

    /// The first report of a day shows the spend before late clicks were billed.
    fn stale(&self, rng: &mut ChaCha8Rng) -> Option<Self> {
        (self.spend_c > 500).then(|| AdRow {
            spend_c: self.spend_c - between(rng, 1, 300),
            ..self.clone()
        })
    }
}

/// The ad report rows of a plan, and their truth.
pub(crate) fn ad_rows<'a>(
    cx: &mut Ctx<'_>,
    campaigns: &'a [Campaign],
    days: &[AdDay],
    skus: &'a [Sku],
) -> Vec<AdRow<'a>> {
    let mut rows = Vec::with_capacity(days.len());
    for d in days {
        let Some(c) = campaigns.get(d.campaign) else {
            continue;
        };
        let row = AdRow {
            day: d.day,
            campaign: &c.name,
            sku: c.sku.and_then(|s| skus.get(s)).map(|s| s.code.as_str()),
            spend_c: d.spend_c,
            impressions: d.impressions,
            clicks: d.clicks,
            sales_c: d.sales_c,
            orders: d.orders,
        };
        cx.truth.ad(&AdFact {
            date: date32(day_start(row.day)),
            campaign: row.campaign,
            sku: row.sku,
            spend_c: row.spend_c,
            impressions: Some(row.impressions),
            clicks: Some(row.clicks),
            sales_c: row.sales_c,
            orders: row.orders,
        });
        rows.push(row);
    }
    rows
}

/// A pseudo-random but stable number for ids that should not look sequential.
pub(crate) fn scramble(a: u64, b: u64, modulo: u64) -> u64 {
    mix(a.wrapping_mul(0x1_0000_0001) ^ b) % modulo.max(1)
}
