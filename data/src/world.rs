//! The seller being simulated: brands, SKUs, shops, profit/service units, and how big each is
//! for a given scale.
//!
//! The company sells four brands (food, home, beauty, outdoor) on four platforms. Each shop
//! belongs to one platform and one brand, and is run by one operating team; the teams are the
//! profit units `U01`–`U08` of [`crate::UNITS`] (two per platform), `U09`–`U12` are service
//! units (warehouse, customer service, procurement, content studio). SKU popularity is Zipf-like
//! within a brand, and each shop lists most of its brand's catalogue.
//!
//! Sizes: scale 1 is one year with ~1,000,000 order lines, 40 shops (tmall 14, jd 10, pdd 8,
//! douyin 8) and 5,000 SKUs. Lines scale linearly; shops and SKUs with the square root of the
//! scale (a small seller has fewer shops and a shorter catalogue, not just fewer orders), with
//! at least 2 shops per platform and 50 SKUs.

use chrono::NaiveDate;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::money::retail;
use crate::shape::{Popularity, between, chance, day_weights, pick, rng_for, tag, uniform};

/// The largest scale accepted (100 × one million lines; ids keep their widths up to there).
pub(crate) const MAX_SCALE: f64 = 100.0;

/// An e-commerce platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Platform {
    Tmall,
    Jd,
    Pdd,
    Douyin,
}

impl Platform {
    pub(crate) const ALL: [Platform; 4] = [
        Platform::Tmall,
        Platform::Jd,
        Platform::Pdd,
        Platform::Douyin,
    ];

    pub(crate) fn name(self) -> &'static str {
        crate::PLATFORMS[self.index()]
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Platform::Tmall => 0,
            Platform::Jd => 1,
            Platform::Pdd => 2,
            Platform::Douyin => 3,
        }
    }

    /// Shops at scale 1.
    fn base_shops(self) -> f64 {
        [14.0, 10.0, 8.0, 8.0][self.index()]
    }

    /// Share of the company's order lines.
    fn line_share(self) -> f64 {
        [0.35, 0.25, 0.20, 0.20][self.index()]
    }

    fn id_prefix(self) -> &'static str {
        ["tm", "jd", "pdd", "dy"][self.index()]
    }

    fn shop_suffixes(self) -> &'static [&'static str] {
        match self {
            Platform::Tmall => &["官方旗舰店", "专卖店", "精品专营店", "企业店"],
            Platform::Jd => &["京东自营旗舰店", "官方旗舰店", "专卖店", "专营店"],
            Platform::Pdd => &["官方旗舰店", "品牌店", "工厂店", "专营店"],
            Platform::Douyin => &["官方旗舰店", "抖音旗舰店", "直播间", "好物店"],
        }
    }
}

struct CategorySpec {
    name: &'static str,
    /// Retail price range in yuan.
    price: (i64, i64),
    /// Net weight range in grams.
    grams: (i64, i64),
    /// Shelf life range in days (food and cosmetics only).
    shelf_life: Option<(i64, i64)>,
    specs: &'static [&'static str],
}

struct BrandSpec {
    name: &'static str,
    code: &'static str,
    share: f64,
    categories: &'static [CategorySpec],
    suppliers: &'static [&'static str],
    /// Index into [`WAREHOUSES`] of the brand's main warehouse.
    home: usize,
}

pub(crate) const WAREHOUSES: [&str; 3] = ["杭州仓", "广州仓", "天津仓"];

const SERIES: [&str; 8] = [
    "经典", "臻选", "轻享", "升级", "限定", "家庭", "尊享", "入门",
];

const fn cat(
    name: &'static str,
    price: (i64, i64),
    grams: (i64, i64),
    shelf_life: Option<(i64, i64)>,
    specs: &'static [&'static str],
) -> CategorySpec {
    CategorySpec {
        name,
        price,
        grams,
        shelf_life,
        specs,
    }
}

const BRANDS: [BrandSpec; 4] = [
    BrandSpec {
        name: "山禾",
        code: "SH",
        share: 0.30,
        categories: &[
            cat(
                "红茶",
                (39, 299),
                (150, 600),
                Some((540, 720)),
                &["100g袋装", "250g罐装", "500g礼盒"],
            ),
            cat(
                "绿茶",
                (49, 399),
                (100, 500),
                Some((360, 540)),
                &["125g罐装", "250g礼盒", "50g尝鲜装"],
            ),
            cat(
                "坚果礼盒",
                (59, 199),
                (500, 1500),
                Some((240, 300)),
                &["750g", "1.2kg", "年货装"],
            ),
            cat(
                "蜂蜜",
                (39, 129),
                (500, 1000),
                Some((720, 1080)),
                &["500g", "1kg", "双瓶装"],
            ),
            cat(
                "燕麦片",
                (19, 69),
                (500, 1500),
                Some((300, 365)),
                &["1kg", "1.5kg", "即食装"],
            ),
        ],
        suppliers: &[
            "杭州山禾茶业有限公司",
            "黄山云雾茶厂",
            "临安坚果食品有限公司",
        ],
        home: 0,
    },
    BrandSpec {
        name: "木森",
        code: "MS",
        share: 0.25,
        categories: &[
            cat(
                "收纳盒",
                (19, 129),
                (300, 2000),
                None,
                &["小号", "中号", "大号三件套"],
            ),
            cat(
                "毛巾",
                (19, 89),
                (100, 500),
                None,
                &["单条", "两条装", "浴巾套装"],
            ),
            cat(
                "保温杯",
                (59, 259),
                (300, 600),
                None,
                &["350ml", "500ml", "750ml"],
            ),
            cat(
                "床品四件套",
                (159, 899),
                (1500, 3500),
                None,
                &["1.5m床", "1.8m床", "2.0m床"],
            ),
            cat(
                "拖鞋",
                (19, 69),
                (200, 500),
                None,
                &["38-39", "40-41", "42-43"],
            ),
        ],
        suppliers: &[
            "南通木森家纺有限公司",
            "义乌森和日用品厂",
            "永康保温器皿有限公司",
        ],
        home: 0,
    },
    BrandSpec {
        name: "青柚",
        code: "QY",
        share: 0.25,
        categories: &[
            cat(
                "面霜",
                (89, 499),
                (80, 200),
                Some((1095, 1095)),
                &["50g", "30g", "礼盒装"],
            ),
            cat(
                "精华液",
                (129, 699),
                (60, 150),
                Some((1095, 1095)),
                &["30ml", "50ml", "双支装"],
            ),
            cat(
                "洗面奶",
                (39, 129),
                (100, 250),
                Some((1095, 1095)),
                &["100g", "150g", "家庭装"],
            ),
            cat(
                "面膜",
                (59, 199),
                (200, 400),
                Some((1095, 1095)),
                &["5片装", "10片装", "20片装"],
            ),
            cat(
                "防晒霜",
                (69, 259),
                (50, 120),
                Some((730, 1095)),
                &["40ml", "60ml", "两支装"],
            ),
        ],
        suppliers: &[
            "广州青柚生物科技有限公司",
            "上海柚研化妆品有限公司",
            "苏州美研代工厂",
        ],
        home: 1,
    },
    BrandSpec {
        name: "北麓",
        code: "BL",
        share: 0.20,
        categories: &[
            cat("冲锋衣", (299, 1299), (600, 1200), None, &["M", "L", "XL"]),
            cat("速干T恤", (59, 199), (150, 300), None, &["M", "L", "XL"]),
            cat(
                "登山杖",
                (89, 399),
                (400, 700),
                None,
                &["单支", "一对", "碳素款"],
            ),
            cat(
                "帐篷",
                (299, 1999),
                (2000, 5000),
                None,
                &["双人", "三人", "四人"],
            ),
            cat("徒步鞋", (299, 999), (800, 1400), None, &["40", "42", "44"]),
        ],
        suppliers: &[
            "泉州北麓户外用品有限公司",
            "厦门山岳服饰有限公司",
            "宁波营地装备厂",
        ],
        home: 2,
    },
];

/// One SKU of the company catalogue (the `erp/skus` row and what the platforms sell).
#[derive(Debug, Clone)]
pub(crate) struct Sku {
    /// 商家编码, the join key to every platform's SKU column.
    pub(crate) code: String,
    pub(crate) spu: String,
    pub(crate) brand: usize,
    pub(crate) category: &'static str,
    pub(crate) title: String,
    pub(crate) grams: i64,
    pub(crate) shelf_life: Option<i64>,
    pub(crate) supplier: &'static str,
    /// List price in cents (before platform-specific pricing).
    pub(crate) price_c: i64,
    /// Purchase cost in 1/10 000 yuan.
    pub(crate) cost_c4: i64,
    pub(crate) warehouse: &'static str,
}

/// One shop.
#[derive(Debug, Clone)]
pub(crate) struct Shop {
    pub(crate) platform: Platform,
    /// Position in [`World::shops`]; used inside ids to keep them globally unique.
    pub(crate) index: usize,
    /// Position among the shops of its platform (0 = largest).
    pub(crate) rank: usize,
    /// 店铺Id, the `shop=` partition value.
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) brand: usize,
    /// Index into [`crate::UNITS`] of the operating team.
    pub(crate) unit: usize,
    /// Expected order lines over the year.
    pub(crate) lines: f64,
    /// SKU indices listed by the shop, most popular first.
    pub(crate) assortment: Vec<usize>,
    pub(crate) popularity: Popularity,
}

impl Shop {
    pub(crate) fn brand_name(&self) -> &'static str {
        BRANDS.get(self.brand).map_or("", |b| b.name)
    }

    pub(crate) fn team(&self) -> &'static str {
        crate::UNITS.get(self.unit).map_or("", |u| u.1)
    }
}

/// Everything shared by all shops: catalogue, shops and the calendar.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) scale: f64,
    pub(crate) seed: u64,
    pub(crate) skus: Vec<Sku>,
    pub(crate) shops: Vec<Shop>,
    pub(crate) day_weights: Vec<f64>,
    /// The day whose export rows are delivered on their own ([`crate::GenOptions::day_apart`]).
    pub(crate) day_apart: Option<NaiveDate>,
}

impl World {
    pub(crate) fn build(scale: f64, seed: u64) -> Result<World> {
        if !scale.is_finite() || scale <= 0.0 || scale > MAX_SCALE {
            return Err(DataError::InvalidOptions {
                message: format!("scale must be in (0, {MAX_SCALE}], got {scale}"),
            });
        }
        let mut rng = rng_for(seed, &[tag("world")]);
        let root = scale.sqrt();
        let n_skus = ((5_000.0 * root).round() as usize).clamp(50, 60_000);
        let (skus, ranked) = build_skus(n_skus, &mut rng);
        let shops = build_shops(scale, root, &ranked, &mut rng)?;
        Ok(World {
            scale,
            seed,
            skus,
            shops,
            day_weights: day_weights(),
            day_apart: None,
        })
    }

    pub(crate) fn brand_name(&self, brand: usize) -> &'static str {
        BRANDS.get(brand).map_or("", |b| b.name)
    }
}

/// The catalogue, and for each brand its SKU indices by popularity.
fn build_skus(n: usize, rng: &mut ChaCha8Rng) -> (Vec<Sku>, Vec<Vec<usize>>) {
    let mut skus = Vec::with_capacity(n);
    let mut ranked = Vec::with_capacity(BRANDS.len());
    for (b, brand) in BRANDS.iter().enumerate() {
        let quota = ((n as f64) * brand.share).round().max(1.0) as usize;
        let first = skus.len();
        let mut spu_no = 0usize;
        while skus.len() - first < quota {
            let ci = spu_no % brand.categories.len();
            let Some(c) = brand.categories.get(ci) else {
                break;
            };
            spu_no += 1;
            let spu = format!("{}{}{:04}", brand.code, ci + 1, spu_no);
            let series = SERIES[spu_no % SERIES.len()];
            // Log-uniform base price within the category range.
            let (lo, hi) = (c.price.0 as f64, c.price.1 as f64);
            let base = (lo.ln() + (hi.ln() - lo.ln()) * uniform(rng, 0.0, 1.0)).exp();
            let base_g = between(rng, c.grams.0, c.grams.1);
            let shelf = c.shelf_life.map(|(a, z)| between(rng, a, z));
            let supplier = pick(rng, brand.suppliers).copied().unwrap_or("");
            let warehouse = if chance(rng, 0.8) {
                WAREHOUSES[brand.home]
            } else {
                pick(rng, &WAREHOUSES).copied().unwrap_or(WAREHOUSES[0])
            };
            let variants = (between(rng, 1, 4) as usize).min(quota - (skus.len() - first));
            for v in 0..variants {
                let spec = c.specs[v % c.specs.len()];
                let factor = 1.0 + 0.25 * v as f64;
                let price_c = retail((base * factor * 100.0) as i64);
                let cost_ratio = uniform(rng, 0.30, 0.50);
                skus.push(Sku {
                    code: format!("{spu}-{:02}", v + 1),
                    spu: spu.clone(),
                    brand: b,
                    category: c.name,
                    title: format!("{} {}{} {}", brand.name, series, c.name, spec),
                    grams: ((base_g as f64) * (1.0 + 0.3 * v as f64)) as i64,
                    shelf_life: shelf,
                    supplier,
                    price_c,
                    cost_c4: ((price_c as f64) * 100.0 * cost_ratio).round() as i64,
                    warehouse,
                });
            }
        }
        let mut order: Vec<usize> = (first..skus.len()).collect();
        order.shuffle(rng);
        ranked.push(order);
    }
    (skus, ranked)
}

fn build_shops(
    scale: f64,
    root: f64,
    ranked: &[Vec<usize>],
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Shop>> {
    let total_lines = 1_000_000.0 * scale;
    let mut shops = Vec::new();
    for platform in Platform::ALL {
        let n = ((platform.base_shops() * root).round() as usize).max(2);
        // Shop sizes fall off like 1/sqrt(rank): one flagship, a tail of smaller shops.
        let weights: Vec<f64> = (0..n).map(|r| 1.0 / ((r + 1) as f64).sqrt()).collect();
        let wsum: f64 = weights.iter().sum();
        let mut per_brand = [0usize; 4];
        for (rank, w) in weights.iter().enumerate() {
            // Rotate brands per platform so that every brand sells even with two shops each.
            let brand = (rank + platform.index()) % BRANDS.len();
            let k = per_brand[brand];
            per_brand[brand] += 1;
            let suffixes = platform.shop_suffixes();
            let mut name = format!("{}{}", BRANDS[brand].name, suffixes[k % suffixes.len()]);
            if k >= suffixes.len() {
                name.push_str(&format!("{}店", k / suffixes.len() + 1));
            }
            let brand_skus = ranked
                .get(brand)
                .ok_or_else(|| DataError::internal("world", "brand without SKUs"))?;
            let assortment: Vec<usize> = brand_skus
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 20 || chance(rng, 0.8))
                .map(|(_, s)| *s)
                .collect();
            let popularity = Popularity::zipf(assortment.len(), uniform(rng, 0.95, 1.15));
            shops.push(Shop {
                platform,
                index: shops.len(),
                rank,
                id: format!("{}{:03}", platform.id_prefix(), rank + 1),
                name,
                brand,
                unit: platform.index() * 2 + rank % 2,
                lines: total_lines * platform.line_share() * w / wsum,
                assortment,
                popularity,
            });
        }
    }
    Ok(shops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_scale() -> Result<()> {
        let w = World::build(1.0, 7)?;
        assert_eq!(w.shops.len(), 40);
        assert_eq!(w.skus.len(), 5_000);
        let small = World::build(0.01, 7)?;
        assert_eq!(small.shops.len(), 8);
        let lines: f64 = small.shops.iter().map(|s| s.lines).sum();
        assert!((lines - 10_000.0).abs() < 1.0);
        let mut codes: Vec<&str> = w.skus.iter().map(|s| s.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), w.skus.len());
        Ok(())
    }
}
