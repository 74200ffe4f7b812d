//! Cube definitions: the `[[cubes]]` of the model (spec/pnl.md § Cubes).
//!
//! A cube is a pre-aggregation of `pnl_ledger` that the P&L cuts sellers look at every day are
//! answered from. Its declaration names, from fixed catalogues:
//!
//! ```text
//!  dimensions     date ─► week                 platform ─► shop_id      unit_id ─► parent_unit_id
//!  (hierarchies)  date ─► month ─► quarter ─► year         category ─► spu ─► sku      brand, campaign
//!  measures       any ledger account · the profit layers (net_sales … net_profit) · units_sold
//!                 · value_added (all accounts but labour) · hours · ledger_rows       (all additive)
//!  kpis           ratios over measures (gross_margin, roi, …), computed when read, never stored
//!  grouping_sets  which subsets of the dimensions to keep (default: all of them, the finest grain)
//! ```
//!
//! `month` is in every cube and in every grouping set: a cube is partitioned by month, and a
//! month's rows depend on that month's ledger rows only, so a refresh rebuilds only the months
//! whose ledger changed. Every measure is additive (a sum), so any coarser cut is a sum of cube
//! rows; ratios are recomputed from their parts ([`Kpi`]), never summed.
//!
//! ```toml
//! [[cubes]]
//! name = "unit_monthly"
//! dimensions = ["month", "unit_id", "parent_unit_id"]
//! measures = ["layers", "accounts"]
//! kpis = ["gross_margin", "net_margin"]
//! grouping_sets = [["unit_id", "parent_unit_id"], ["parent_unit_id"], []]
//! schedule = "0 6 * * *"      # refreshed at 06:00 (Asia/Shanghai); without a schedule, or
//! on_new_exports = true       # with this, also whenever new exports land
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use crate::schedule::Schedule;

/// A dimension a cube can keep: a column of the ledger or of a dimension table, or a level
/// derived from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    /// The ledger's date.
    Date,
    /// ISO week of the date, `2025-W45`.
    Week,
    /// `YYYY-MM`: in every cube (the partition key).
    Month,
    /// `2025-Q4`.
    Quarter,
    /// `2025`.
    Year,
    /// The platform.
    Platform,
    /// The shop (unique across platforms).
    ShopId,
    /// The SKU's brand (SKU master).
    Brand,
    /// The SKU's category (SKU master).
    Category,
    /// The SKU's SPU (SKU master).
    Spu,
    /// The SKU.
    Sku,
    /// The ad campaign (plan) of advertising rows.
    Campaign,
    /// The unit (阿米巴) the row belongs to.
    UnitId,
    /// The unit's parent in the unit tree.
    ParentUnitId,
}

/// Where a dimension's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimensionSource {
    /// A ledger column.
    Ledger,
    /// Derived from the ledger's date or month.
    Calendar,
    /// The SKU master (`skus`), joined on the SKU.
    SkuMaster,
    /// The model's unit tree, joined on the unit.
    UnitTree,
}

impl Dimension {
    /// Every dimension, in the order cube columns are laid out.
    pub const ALL: [Dimension; 14] = [
        Dimension::Month,
        Dimension::Date,
        Dimension::Week,
        Dimension::Quarter,
        Dimension::Year,
        Dimension::Platform,
        Dimension::ShopId,
        Dimension::Brand,
        Dimension::Category,
        Dimension::Spu,
        Dimension::Sku,
        Dimension::Campaign,
        Dimension::UnitId,
        Dimension::ParentUnitId,
    ];

    /// The column name (the ledger's where it is a ledger column).
    pub fn column(self) -> &'static str {
        match self {
            Dimension::Date => "date",
            Dimension::Week => "week",
            Dimension::Month => "month",
            Dimension::Quarter => "quarter",
            Dimension::Year => "year",
            Dimension::Platform => "platform",
            Dimension::ShopId => "shop_id",
            Dimension::Brand => "brand",
            Dimension::Category => "category",
            Dimension::Spu => "spu",
            Dimension::Sku => "sku",
            Dimension::Campaign => "campaign",
            Dimension::UnitId => "unit_id",
            Dimension::ParentUnitId => "parent_unit_id",
        }
    }

    /// The dimension named `column`.
    pub fn parse(column: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.column() == column)
    }

    /// Where the value comes from.
    pub fn source(self) -> DimensionSource {
        use Dimension::*;
        match self {
            Date | Month | Platform | ShopId | Sku | Campaign | UnitId => DimensionSource::Ledger,
            Week | Quarter | Year => DimensionSource::Calendar,
            Brand | Category | Spu => DimensionSource::SkuMaster,
            ParentUnitId => DimensionSource::UnitTree,
        }
    }
}

/// How a measure is computed from ledger rows (every one is a sum, so it is additive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MeasureKind {
    /// `SUM(amount)` over rows of these accounts.
    Accounts(Vec<String>),
    /// `SUM(amount)` over every account but these.
    AllAccountsExcept(Vec<String>),
    /// `SUM(qty)` of `gross_sales` rows: units sold.
    UnitsSold,
    /// Labour hours of the unit and month (finance `hours`).
    Hours,
    /// Number of ledger rows summed (drill-through sizing).
    LedgerRows,
}

/// A stored, additive column of a cube.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Measure {
    /// Column name.
    pub name: String,
    /// How it is computed.
    pub kind: MeasureKind,
}

/// A ratio computed from a cube's measures when it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kpi {
    /// Column name (also the udfs function it calls, when there is one).
    pub name: &'static str,
    /// The SQL expression over measure columns.
    pub sql: &'static str,
    /// The measures it reads.
    pub needs: &'static [&'static str],
}

/// The KPIs a cube may declare (spec/pnl.md § KPIs; functions of amoeba-udfs).
pub const KPIS: &[Kpi] = &[
    Kpi {
        name: "gross_margin",
        sql: "gross_margin(gross_profit, net_sales)",
        needs: &["gross_profit", "net_sales"],
    },
    Kpi {
        name: "net_margin",
        sql: "net_margin(net_profit, net_sales)",
        needs: &["net_profit", "net_sales"],
    },
    Kpi {
        name: "cm3_margin",
        sql: "safe_div(cm3, net_sales)",
        needs: &["cm3", "net_sales"],
    },
    Kpi {
        name: "roi",
        sql: "roi(net_profit, advertising)",
        needs: &["net_profit", "advertising"],
    },
    Kpi {
        name: "roas",
        sql: "roas(net_sales, advertising)",
        needs: &["net_sales", "advertising"],
    },
    Kpi {
        name: "break_even_roas",
        sql: "break_even_roas(cm2, net_sales)",
        needs: &["cm2", "net_sales"],
    },
    Kpi {
        name: "take_rate",
        sql: "take_rate(platform_commission + platform_service_fee + payment_fee, net_sales)",
        needs: &[
            "platform_commission",
            "platform_service_fee",
            "payment_fee",
            "net_sales",
        ],
    },
    Kpi {
        name: "refund_rate",
        sql: "return_rate(-refund, gross_sales)",
        needs: &["refund", "gross_sales"],
    },
    Kpi {
        name: "hourly_value_added",
        sql: "hourly_value_added(value_added, CAST(0 AS DECIMAL(38,2)), hours)",
        needs: &["value_added", "hours"],
    },
];

/// The ledger accounts of spec/pnl.md, in P&L order (without the model's `allocated_*`).
pub const LEDGER_ACCOUNTS: &[&str] = &[
    "gross_sales",
    "seller_discount",
    "shipping_income",
    "refund",
    "cogs",
    "inventory_loss",
    "platform_commission",
    "platform_service_fee",
    "payment_fee",
    "shipping_cost",
    "packaging",
    "advertising",
    "affiliate_commission",
    "other_platform_fee",
    "internal_revenue",
    "internal_cost",
];

/// The accounts that make net sales.
pub const NET_SALES: &[&str] = &[
    "gross_sales",
    "seller_discount",
    "shipping_income",
    "refund",
];
/// Added to net sales for gross profit (CM1).
pub const CM1_COSTS: &[&str] = &["cogs", "inventory_loss"];
/// Added to CM1 for CM2.
pub const CM2_COSTS: &[&str] = &[
    "platform_commission",
    "platform_service_fee",
    "payment_fee",
    "shipping_cost",
    "packaging",
];
/// Added to CM2 for CM3.
pub const CM3_COSTS: &[&str] = &["advertising", "affiliate_commission"];

/// The profit layers (name, accounts summed); `net_profit` is every account.
pub fn layers() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut acc: Vec<&'static str> = NET_SALES.to_vec();
    let mut out = vec![("net_sales", acc.clone())];
    acc.extend_from_slice(CM1_COSTS);
    out.push(("gross_profit", acc.clone()));
    acc.extend_from_slice(CM2_COSTS);
    out.push(("cm2", acc.clone()));
    acc.extend_from_slice(CM3_COSTS);
    out.push(("cm3", acc));
    out
}

/// A validated cube declaration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CubeDef {
    /// Name: `cubes.<name>` in SQL, `cubes/<name>/` in the warehouse.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its dimensions in [`Dimension::ALL`] order; `month` first.
    pub dimensions: Vec<Dimension>,
    /// Stored measures, in declared order (with what the KPIs need).
    pub measures: Vec<Measure>,
    /// KPIs computed when read.
    pub kpis: Vec<Kpi>,
    /// The grouping sets kept, each in [`Dimension::ALL`] order and with `month`; the first
    /// is the finest.
    pub grouping_sets: Vec<Vec<Dimension>>,
    /// How long a replaced version stays readable (queries running on it finish).
    pub retention: Duration,
    /// Refreshed when new exports land (the default without a schedule).
    pub on_new_exports: bool,
    /// Refreshed at these times (cron, Asia/Shanghai).
    pub schedule: Option<Schedule>,
    /// Line of the declaration in the model file.
    pub line: usize,
}

impl CubeDef {
    /// The grouping set's label, as stored in the `_set` column: its dimensions joined by `,`.
    pub fn set_label(set: &[Dimension]) -> String {
        let names: Vec<&str> = set.iter().map(|d| d.column()).collect();
        names.join(",")
    }

    /// Whether the cube reads the SKU master.
    pub fn uses(&self, source: DimensionSource) -> bool {
        self.dimensions.iter().any(|d| d.source() == source)
    }

    /// Whether a measure of this kind is stored.
    pub fn has_measure(&self, name: &str) -> bool {
        self.measures.iter().any(|m| m.name == name)
    }
}

// ---------------------------------------------------------------------------------------------
// The declaration as written

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCube {
    name: String,
    #[serde(default)]
    description: Option<String>,
    dimensions: Vec<String>,
    #[serde(default)]
    measures: Option<Vec<String>>,
    #[serde(default)]
    kpis: Vec<String>,
    #[serde(default)]
    grouping_sets: Option<Vec<Vec<String>>>,
    #[serde(default)]
    labour_accounts: Option<Vec<String>>,
    #[serde(default)]
    retention_minutes: Option<u64>,
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    on_new_exports: Option<bool>,
}

/// Why a cube declaration is refused: (key under `cubes[i]`, reason).
pub(crate) type CubeError = (String, String);

/// Default labour accounts for `value_added`: the staff pool.
const DEFAULT_LABOUR: &[&str] = &["allocated_staff"];
/// Dimensions `hours` can be kept with: hours are per unit and month.
const HOURS_GRAIN: &[Dimension] = &[
    Dimension::Month,
    Dimension::Quarter,
    Dimension::Year,
    Dimension::UnitId,
    Dimension::ParentUnitId,
];

/// Validates one `[[cubes]]` entry against the model's accounts (`accounts`, P&L order).
pub(crate) fn validate(
    raw: &RawCube,
    accounts: &[String],
    line: usize,
) -> Result<CubeDef, CubeError> {
    let err = |key: &str, reason: String| Err((key.to_string(), reason));
    if raw.name.is_empty()
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || raw.name.starts_with(|c: char| c.is_ascii_digit())
    {
        return err(
            "name",
            format!(
                "'{}' must be lower-case letters, digits and _ (a SQL name)",
                raw.name
            ),
        );
    }
    let mut dims = BTreeSet::new();
    for d in &raw.dimensions {
        match Dimension::parse(d) {
            Some(dim) if dims.insert(dim) => {}
            Some(_) => return err("dimensions", format!("'{d}' is listed twice")),
            None => {
                let known: Vec<&str> = Dimension::ALL.iter().map(|d| d.column()).collect();
                return err(
                    "dimensions",
                    format!("unknown dimension '{d}' (one of {})", known.join(", ")),
                );
            }
        }
    }
    if !dims.contains(&Dimension::Month) {
        return err(
            "dimensions",
            "a cube is partitioned by month: list \"month\" among its dimensions".into(),
        );
    }
    let dimensions: Vec<Dimension> = Dimension::ALL
        .into_iter()
        .filter(|d| dims.contains(d))
        .collect();

    let labour: Vec<String> = raw
        .labour_accounts
        .clone()
        .unwrap_or_else(|| DEFAULT_LABOUR.iter().map(|s| s.to_string()).collect());
    if raw.labour_accounts.is_some()
        && let Some(unknown) = labour.iter().find(|a| !accounts.contains(a))
    {
        return err(
            "labour_accounts",
            format!(
                "unknown account '{unknown}' (the model's accounts: {})",
                accounts.join(", ")
            ),
        );
    }
    let catalogue = measure_catalogue(accounts, &labour);
    let mut names: Vec<String> = Vec::new();
    let requested = raw
        .measures
        .clone()
        .unwrap_or_else(|| vec!["accounts".into(), "layers".into(), "units_sold".into()]);
    for m in &requested {
        let expanded: Vec<String> = match m.as_str() {
            "accounts" => accounts.to_vec(),
            "layers" => layers()
                .into_iter()
                .map(|(n, _)| n.to_string())
                .chain(["net_profit".to_string()])
                .collect(),
            other if catalogue.iter().any(|c| c.name == other) => vec![other.to_string()],
            other => {
                return err(
                    "measures",
                    format!(
                        "unknown measure '{other}' (an account, a layer — net_sales, gross_profit, cm2, cm3, net_profit — units_sold, value_added, hours, ledger_rows, or the groups \"accounts\" and \"layers\")"
                    ),
                );
            }
        };
        for n in expanded {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let mut kpis = Vec::new();
    for k in &raw.kpis {
        let Some(kpi) = KPIS.iter().find(|x| x.name == k) else {
            let known: Vec<&str> = KPIS.iter().map(|k| k.name).collect();
            return err(
                "kpis",
                format!("unknown KPI '{k}' (one of {})", known.join(", ")),
            );
        };
        if kpis.contains(kpi) {
            return err("kpis", format!("'{k}' is listed twice"));
        }
        // A ratio is recomputed from its additive parts: store them.
        for need in kpi.needs {
            if !names.iter().any(|n| n == need) {
                names.push((*need).to_string());
            }
        }
        kpis.push(*kpi);
    }
    if names.iter().any(|n| n == "value_added") && !accounts.iter().any(|a| labour.contains(a)) {
        return err(
            "labour_accounts",
            "value_added needs the labour accounts (e.g. [\"allocated_staff\"]): none is an account of the model".into(),
        );
    }
    if names.iter().any(|n| n == "hours")
        && let Some(d) = dimensions.iter().find(|d| !HOURS_GRAIN.contains(d))
    {
        return err(
            "measures",
            format!(
                "hours are per unit and month: a cube with hours cannot have dimension '{}'",
                d.column()
            ),
        );
    }
    let measures: Vec<Measure> = names
        .iter()
        .filter_map(|n| catalogue.iter().find(|c| &c.name == n).cloned())
        .collect();

    let raw_sets = raw
        .grouping_sets
        .clone()
        .unwrap_or_else(|| vec![dimensions.iter().map(|d| d.column().to_string()).collect()]);
    if raw_sets.is_empty() {
        return err("grouping_sets", "give at least one grouping set".into());
    }
    let mut grouping_sets: Vec<Vec<Dimension>> = Vec::new();
    for (i, set) in raw_sets.iter().enumerate() {
        let mut members = BTreeSet::from([Dimension::Month]);
        for d in set {
            match Dimension::parse(d) {
                Some(dim) if dims.contains(&dim) => {
                    members.insert(dim);
                }
                _ => {
                    return err(
                        &format!("grouping_sets[{i}]"),
                        format!("'{d}' is not a dimension of this cube"),
                    );
                }
            }
        }
        let ordered: Vec<Dimension> = Dimension::ALL
            .into_iter()
            .filter(|d| members.contains(d))
            .collect();
        if grouping_sets.contains(&ordered) {
            return err(
                &format!("grouping_sets[{i}]"),
                format!("the set [{}] is listed twice", CubeDef::set_label(&ordered)),
            );
        }
        grouping_sets.push(ordered);
    }
    // The finest set first: the one the others are checked against (sets are sums of it).
    grouping_sets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let schedule = match &raw.schedule {
        Some(text) => Some(Schedule::parse(text).map_err(|e| ("schedule".to_string(), e))?),
        None => None,
    };
    Ok(CubeDef {
        name: raw.name.clone(),
        description: raw.description.clone().unwrap_or_default(),
        dimensions,
        measures,
        kpis,
        grouping_sets,
        retention: Duration::from_secs(raw.retention_minutes.unwrap_or(60) * 60),
        on_new_exports: raw.on_new_exports.unwrap_or(schedule.is_none()),
        schedule,
        line,
    })
}

/// Every measure a cube of a model with these accounts may store.
fn measure_catalogue(accounts: &[String], labour: &[String]) -> Vec<Measure> {
    let mut out: Vec<Measure> = accounts
        .iter()
        .map(|a| Measure {
            name: a.clone(),
            kind: MeasureKind::Accounts(vec![a.clone()]),
        })
        .collect();
    for (name, accs) in layers() {
        out.push(Measure {
            name: name.to_string(),
            kind: MeasureKind::Accounts(accs.iter().map(|s| s.to_string()).collect()),
        });
    }
    out.push(Measure {
        name: "net_profit".into(),
        kind: MeasureKind::AllAccountsExcept(Vec::new()),
    });
    out.push(Measure {
        name: "value_added".into(),
        kind: MeasureKind::AllAccountsExcept(labour.to_vec()),
    });
    out.push(Measure {
        name: "units_sold".into(),
        kind: MeasureKind::UnitsSold,
    });
    out.push(Measure {
        name: "hours".into(),
        kind: MeasureKind::Hours,
    });
    out.push(Measure {
        name: "ledger_rows".into(),
        kind: MeasureKind::LedgerRows,
    });
    out
}
