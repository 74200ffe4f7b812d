//! The accounting model (`model/model.toml` in the warehouse): the unit tree, the rules that
//! assign rows to units, fee and expense accounts, shared-cost pools, step-down of service
//! units, internal settlement and the costing method. It is data: changing how the company
//! is cut into 阿米巴 needs no code.
//!
//! ```text
//! [costing]        method = "fifo" | "moving_average"
//! [ledger]         retention_minutes: how long a replaced ledger version stays readable (60);
//!                  memory_limit_mb: the build's memory, working tables on disk beyond it
//! [[units]]        id, name, kind = company | profit | service, parent, headcount, area
//! [[assign]]       platform / shop / team / brand / category / sku → unit (most specific wins)
//! [fallback]       source → unit for rows no rule matches (else the root, reported)
//! [fee_accounts]   "<fee name>" = "<account>": adds to / overrides the platform mappings
//! [[pools]]        expense categories → account allocated_<name>; shared rows by driver
//! [[step_down]]    service units whose remaining cost moves to the units they serve, in order
//! [[settlements]]  provider → receivers: per_order, per_kg, per_unit, pct_net_sales,
//!                  cost_plus_cogs, fixed_monthly; each with effective dates
//! [[cubes]]        the P&L cuts materialized under cubes/<name>/ (see `cube`)
//! [[users]]        name, role = admin | analyst | unit_leader, unit (see `users`)
//! ```
//!
//! Parsing checks everything a later step relies on — every unit a rule names exists, the tree
//! has one root and no cycle, rates are exact decimals, dates are dates — and an error names
//! the file, the line and the key, so that a bad model never reaches a ledger build.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use crate::cube::{CubeDef, LEDGER_ACCOUNTS, RawCube};
use crate::error::{CatalogError, Result};
use crate::users::{RawUser, User};

/// Where a warehouse keeps its model.
pub const MODEL_FILE: &str = "model/model.toml";

/// The ledger accounts a fee may be mapped to (spec/pnl.md).
pub const FEE_ACCOUNTS: &[&str] = &[
    "platform_commission",
    "platform_service_fee",
    "payment_fee",
    "advertising",
    "affiliate_commission",
    "other_platform_fee",
    "shipping_cost",
    "packaging",
];

/// A parsed, validated model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The file it came from.
    pub file: String,
    /// How stock is costed.
    pub costing: CostingMethod,
    /// How long a replaced ledger version stays in the warehouse: queries (of this server or
    /// another one serving the same warehouse) still reading it finish.
    pub ledger_retention: std::time::Duration,
    /// `[ledger] memory_limit_mb`, in bytes: when set, the ledger build keeps its working tables
    /// as Parquet in a scratch folder and its sorts and aggregations spill to disk beyond it
    /// (a warehouse larger than the machine's memory); unset, everything stays in memory
    /// (fastest).
    pub ledger_memory_limit: Option<usize>,
    /// Every unit; the first is the root.
    pub units: Vec<Unit>,
    /// Assignment rules, most specific first (ties: declared order).
    pub assign: Vec<AssignRule>,
    /// Source → unit for rows that no rule assigns.
    pub fallback: BTreeMap<String, String>,
    /// Fee name → account, over the platform mappings' fee maps.
    pub fee_accounts: BTreeMap<String, String>,
    /// Expense pools.
    pub pools: Vec<Pool>,
    /// Service units stepped down, in order.
    pub step_down: Vec<StepDown>,
    /// Internal settlement rules.
    pub settlements: Vec<Settlement>,
    /// Cubes to materialize.
    pub cubes: Vec<CubeDef>,
    /// Who may connect, and their roles.
    pub users: Vec<User>,
}

/// `[ledger] retention_minutes` when the model does not say (the cubes' default too).
pub const DEFAULT_LEDGER_RETENTION_MINUTES: u64 = 60;

/// The least `[ledger] memory_limit_mb` a model may set.
pub const MIN_LEDGER_MEMORY_MB: u64 = 64;

/// FIFO layers or a moving weighted average, per SKU and warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostingMethod {
    /// First in, first out.
    Fifo,
    /// Moving weighted average.
    MovingAverage,
}

/// What a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// The root: holds what is not assigned.
    Company,
    /// Sells to customers.
    Profit,
    /// Serves other units, paid by internal settlement.
    Service,
}

impl UnitKind {
    /// `company`, `profit`, `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Company => "company",
            UnitKind::Profit => "profit",
            UnitKind::Service => "service",
        }
    }
}

/// One 阿米巴.
#[derive(Debug, Clone)]
pub struct Unit {
    /// Stable id (`U01`).
    pub id: String,
    /// Display name (`天猫一组`).
    pub name: String,
    /// What it is.
    pub kind: UnitKind,
    /// Parent id (none for the root).
    pub parent: Option<String>,
    /// People, for the `headcount` driver.
    pub headcount: Option<i64>,
    /// Square metres, for the `area` driver.
    pub area: Option<i64>,
}

/// The keys an assignment rule can match, least specific first.
pub const ASSIGN_KEYS: [&str; 6] = ["platform", "team", "shop", "brand", "category", "sku"];

/// Rows matching every given key go to `unit`.
#[derive(Debug, Clone)]
pub struct AssignRule {
    /// Key → value to match (keys from [`ASSIGN_KEYS`]).
    pub keys: BTreeMap<String, String>,
    /// The unit.
    pub unit: String,
    /// Most specific key's rank in [`ASSIGN_KEYS`] (higher wins), then the number of keys.
    pub specificity: (usize, usize),
    /// Line in the model file.
    pub line: usize,
}

/// An allocation driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// Net sales of the target.
    NetSales,
    /// Gross sales.
    GrossSales,
    /// Distinct paid orders.
    Orders,
    /// Units sold.
    Units,
    /// Weight shipped (outbound waybills).
    WeightKg,
    /// Hours worked (erp hours).
    Hours,
    /// The units' declared headcount.
    Headcount,
    /// The units' declared area.
    Area,
    /// One share each.
    Equal,
    /// The rule's fixed percentages.
    Fixed,
}

impl Driver {
    /// The driver's name in the model.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::NetSales => "net_sales",
            Driver::GrossSales => "gross_sales",
            Driver::Orders => "orders",
            Driver::Units => "units",
            Driver::WeightKg => "weight_kg",
            Driver::Hours => "hours",
            Driver::Headcount => "headcount",
            Driver::Area => "area",
            Driver::Equal => "equal",
            Driver::Fixed => "fixed",
        }
    }
}

/// Who receives an allocation or a settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Every profit unit.
    Profit,
    /// These units.
    Units(Vec<String>),
}

/// An expense pool: categories of `expenses` whose rows land on `allocated_<name>` (or the
/// pool's `account`). A row whose cost centre is a unit id is that unit's own cost; any other
/// cost centre (公共) is shared and allocated by `driver` over `targets`, month by month.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Pool name (`rent`).
    pub name: String,
    /// Ledger account (`allocated_<name>` unless given).
    pub account: String,
    /// Expense categories (费用类别).
    pub categories: Vec<String>,
    /// Driver for shared rows.
    pub driver: Driver,
    /// Targets of shared rows.
    pub targets: Targets,
    /// Fixed percentages (driver `fixed`): unit → percent, summing to 100.
    pub percentages: BTreeMap<String, i128>,
}

/// A service unit whose net cost (after settlement) is moved to `targets` by `driver`.
#[derive(Debug, Clone)]
pub struct StepDown {
    /// The service unit.
    pub unit: String,
    /// Driver.
    pub driver: Driver,
    /// Targets (units stepped down before are never targets).
    pub targets: Targets,
    /// Fixed percentages (driver `fixed`).
    pub percentages: BTreeMap<String, i128>,
}

/// How a settlement is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// `rate` yuan per order shipped.
    PerOrder,
    /// `rate` yuan per kg shipped.
    PerKg,
    /// `rate` yuan per unit sold.
    PerUnit,
    /// `rate` percent of net sales.
    PctNetSales,
    /// `rate` percent on top of COGS.
    CostPlusCogs,
    /// `rate` yuan per month, split over the receivers equally.
    FixedMonthly,
}

impl Basis {
    /// The basis' name in the model.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::PerOrder => "per_order",
            Basis::PerKg => "per_kg",
            Basis::PerUnit => "per_unit",
            Basis::PctNetSales => "pct_net_sales",
            Basis::CostPlusCogs => "cost_plus_cogs",
            Basis::FixedMonthly => "fixed_monthly",
        }
    }
}

/// An internal settlement rule.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// Rule name (the ledger's `source`).
    pub name: String,
    /// The service unit that earns `internal_revenue`.
    pub provider: String,
    /// The units charged `internal_cost`.
    pub receivers: Targets,
    /// Pricing.
    pub basis: Basis,
    /// The rate, scaled by 10^4 (`2.50` → 25000).
    pub rate_e4: i128,
    /// First month in force, `YYYY-MM`.
    pub from: String,
    /// Last month in force, `YYYY-MM` (open-ended when absent).
    pub to: Option<String>,
}

impl Model {
    /// Parses and validates a model file.
    pub fn parse(file: &str, text: &str) -> Result<Model> {
        let raw: RawModel = toml::from_str(text).map_err(|e| {
            CatalogError::model(file, None, e.message().to_string(), e.span(), text)
        })?;
        Validator { file, text }.build(raw)
    }

    /// The root unit's id.
    pub fn root(&self) -> &str {
        self.units.first().map_or("", |u| u.id.as_str())
    }

    /// A unit by id.
    pub fn unit(&self, id: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.id == id)
    }

    /// Ids of the units of `targets`, in id order.
    pub fn target_ids(&self, targets: &Targets) -> Vec<String> {
        let mut ids: Vec<String> = match targets {
            Targets::Profit => self
                .units
                .iter()
                .filter(|u| u.kind == UnitKind::Profit)
                .map(|u| u.id.clone())
                .collect(),
            Targets::Units(ids) => ids.clone(),
        };
        ids.sort();
        ids
    }

    /// Every ledger account of this model, in P&L order: the fixed accounts of spec/pnl.md,
    /// then the `allocated_*` accounts of its pools and step-downs, and `allocated_other`.
    pub fn accounts(&self) -> Vec<String> {
        let mut allocated: Vec<String> = self
            .pools
            .iter()
            .map(|p| p.account.clone())
            .filter(|a| a.starts_with("allocated_"))
            .chain(
                self.step_down
                    .iter()
                    .map(|s| format!("allocated_{}", s.unit.to_lowercase())),
            )
            .chain(["allocated_other".to_string()])
            .collect();
        allocated.sort();
        allocated.dedup();
        LEDGER_ACCOUNTS
            .iter()
            .map(|a| a.to_string())
            .chain(allocated)
            .collect()
    }

    /// A cube by name.
    pub fn cube(&self, name: &str) -> Option<&CubeDef> {
        self.cubes.iter().find(|c| c.name == name)
    }

    /// A declared user by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The unit and its descendants.
    pub fn subtree(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut i = 0;
        while let Some(current) = out.get(i).cloned() {
            for u in &self.units {
                if u.parent.as_deref() == Some(current.as_str()) {
                    out.push(u.id.clone());
                }
            }
            i += 1;
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    #[serde(default)]
    costing: Option<RawCosting>,
    #[serde(default)]
    ledger: Option<RawLedger>,
    units: Vec<Spanned<RawUnit>>,
    #[serde(default)]
    assign: Vec<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    fallback: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    fee_accounts: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pools: Vec<Spanned<RawPool>>,
    #[serde(default)]
    step_down: Vec<Spanned<RawStepDown>>,
    #[serde(default)]
    settlements: Vec<Spanned<RawSettlement>>,
    #[serde(default)]
    cubes: Vec<Spanned<RawCube>>,
    #[serde(default)]
    users: Vec<Spanned<RawUser>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    #[serde(default)]
    retention_minutes: Option<u64>,
    #[serde(default)]
    memory_limit_mb: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCosting {
    method: CostingMethod,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnit {
    id: String,
    name: String,
    kind: UnitKind,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    headcount: Option<i64>,
    #[serde(default)]
    area: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTargets {
    Word(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawNumber {
    Int(i64),
    Text(String),
    Float(f64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: String,
    #[serde(default)]
    account: Option<String>,
    categories: Vec<String>,
    #[serde(default)]
    driver: Option<Driver>,
    #[serde(default)]
    targets: Option<RawTargets>,
    #[serde(default)]
    percentages: BTreeMap<String, RawNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStepDown {
    unit: String,
    driver: Driver,
    #[serde(default)]
    targets: Option<RawTargets>,
    #[serde(default)]
    percentages: BTreeMap<String, RawNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettlement {
    name: String,
    provider: String,
    #[serde(default)]
    receivers: Option<RawTargets>,
    basis: Basis,
    rate: RawNumber,
    from: String,
    #[serde(default)]
    to: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validation

/// Checks that a unit id is declared (id, span, key).
type KnownUnit<'a> = dyn Fn(&str, &std::ops::Range<usize>, &str) -> Result<()> + 'a;

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Validator<'_> {
    fn err(&self, span: std::ops::Range<usize>, key: &str, reason: String) -> CatalogError {
        CatalogError::model(self.file, Some(key), reason, Some(span), self.text)
    }

    fn line(&self, span: &std::ops::Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    fn build(&self, raw: RawModel) -> Result<Model> {
        let units = self.units(&raw.units)?;
        let ids: BTreeSet<&str> = units.iter().map(|u| u.id.as_str()).collect();
        let known = |id: &str, span: &std::ops::Range<usize>, key: &str| -> Result<()> {
            if ids.contains(id) {
                Ok(())
            } else {
                Err(self.err(
                    span.clone(),
                    key,
                    format!("unknown unit '{id}' (declare it in [[units]])"),
                ))
            }
        };

        let mut assign = Vec::new();
        for (i, rule) in raw.assign.iter().enumerate() {
            let span = rule.span();
            let key = format!("assign[{i}]");
            let mut keys = rule.get_ref().clone();
            let unit = keys.remove("unit").ok_or_else(|| {
                self.err(span.clone(), &key, "a rule needs `unit = \"…\"`".into())
            })?;
            known(&unit, &span, &format!("{key}.unit"))?;
            if keys.is_empty() {
                return Err(self.err(
                    span,
                    &key,
                    format!("a rule needs at least one of {}", ASSIGN_KEYS.join(", ")),
                ));
            }
            let mut rank = 0;
            for k in keys.keys() {
                match ASSIGN_KEYS.iter().position(|a| a == k) {
                    Some(r) => rank = rank.max(r),
                    None => {
                        return Err(self.err(
                            span,
                            &format!("{key}.{k}"),
                            format!("unknown key (expected {} or unit)", ASSIGN_KEYS.join(", ")),
                        ));
                    }
                }
            }
            let specificity = (rank, keys.len());
            assign.push(AssignRule {
                keys,
                unit,
                specificity,
                line: self.line(&span),
            });
        }
        // Most specific first; the sort is stable, so equal rules keep their declared order.
        assign.sort_by_key(|r| std::cmp::Reverse(r.specificity));

        let mut fallback = BTreeMap::new();
        for (source, unit) in &raw.fallback {
            known(unit.get_ref(), &unit.span(), &format!("fallback.{source}"))?;
            fallback.insert(source.clone(), unit.get_ref().clone());
        }

        let mut fee_accounts = BTreeMap::new();
        for (name, account) in &raw.fee_accounts {
            let a = account.get_ref();
            if !FEE_ACCOUNTS.contains(&a.as_str()) && !a.starts_with('_') {
                return Err(self.err(
                    account.span(),
                    &format!("fee_accounts.\"{name}\""),
                    format!(
                        "unknown account '{a}' (one of {}, or _-prefixed for money that is not a fee)",
                        FEE_ACCOUNTS.join(", ")
                    ),
                ));
            }
            fee_accounts.insert(name.clone(), a.clone());
        }

        let mut pools: Vec<Pool> = Vec::new();
        let mut categories = BTreeSet::new();
        for (i, p) in raw.pools.iter().enumerate() {
            let span = p.span();
            let key = format!("pools[{i}]");
            let raw = p.get_ref();
            if !is_ident(&raw.name) {
                return Err(self.err(
                    span,
                    &format!("{key}.name"),
                    format!("'{}' must be lower-case letters, digits and _", raw.name),
                ));
            }
            if pools.iter().any(|q| q.name == raw.name) {
                return Err(self.err(
                    span,
                    &format!("{key}.name"),
                    format!("pool '{}' is declared twice", raw.name),
                ));
            }
            for c in &raw.categories {
                if !categories.insert(c.clone()) {
                    return Err(self.err(
                        span,
                        &format!("{key}.categories"),
                        format!("expense category '{c}' is in two pools"),
                    ));
                }
            }
            let targets = self.targets(raw.targets.as_ref(), &span, &key, &known)?;
            let driver = raw.driver.unwrap_or(Driver::NetSales);
            let percentages =
                self.percentages(driver, &raw.percentages, &targets, &span, &key, &known)?;
            pools.push(Pool {
                name: raw.name.clone(),
                account: raw
                    .account
                    .clone()
                    .unwrap_or_else(|| format!("allocated_{}", raw.name)),
                categories: raw.categories.clone(),
                driver,
                targets,
                percentages,
            });
        }

        let mut step_down: Vec<StepDown> = Vec::new();
        for (i, s) in raw.step_down.iter().enumerate() {
            let span = s.span();
            let key = format!("step_down[{i}]");
            let raw = s.get_ref();
            known(&raw.unit, &span, &format!("{key}.unit"))?;
            if step_down.iter().any(|d| d.unit == raw.unit) {
                return Err(self.err(
                    span,
                    &format!("{key}.unit"),
                    format!("unit '{}' is stepped down twice", raw.unit),
                ));
            }
            let targets = self.targets(raw.targets.as_ref(), &span, &key, &known)?;
            if let Targets::Units(list) = &targets
                && let Some(closed) = list
                    .iter()
                    .find(|t| **t == raw.unit || step_down.iter().any(|d| d.unit == **t))
            {
                return Err(self.err(
                    span,
                    &format!("{key}.targets"),
                    format!(
                        "'{closed}' is already closed at this step (a unit stepped down receives nothing afterwards)"
                    ),
                ));
            }
            let percentages =
                self.percentages(raw.driver, &raw.percentages, &targets, &span, &key, &known)?;
            step_down.push(StepDown {
                unit: raw.unit.clone(),
                driver: raw.driver,
                targets,
                percentages,
            });
        }

        let mut settlements: Vec<Settlement> = Vec::new();
        for (i, s) in raw.settlements.iter().enumerate() {
            let span = s.span();
            let key = format!("settlements[{i}]");
            let raw = s.get_ref();
            if settlements.iter().any(|t| t.name == raw.name) {
                return Err(self.err(
                    span,
                    &format!("{key}.name"),
                    format!("settlement '{}' is declared twice", raw.name),
                ));
            }
            known(&raw.provider, &span, &format!("{key}.provider"))?;
            let receivers = self.targets(raw.receivers.as_ref(), &span, &key, &known)?;
            let rate_e4 = self.decimal(&raw.rate, &span, &format!("{key}.rate"))?;
            let from = self.month(&raw.from, &span, &format!("{key}.from"))?;
            let to = match &raw.to {
                Some(t) => Some(self.month(t, &span, &format!("{key}.to"))?),
                None => None,
            };
            if let Some(t) = &to
                && *t < from
            {
                return Err(self.err(
                    span,
                    &format!("{key}.to"),
                    format!("'{t}' is before from = '{from}'"),
                ));
            }
            settlements.push(Settlement {
                name: raw.name.clone(),
                provider: raw.provider.clone(),
                receivers,
                basis: raw.basis,
                rate_e4,
                from,
                to,
            });
        }

        let mut model = Model {
            file: self.file.to_string(),
            costing: raw.costing.map_or(CostingMethod::Fifo, |c| c.method),
            ledger_retention: std::time::Duration::from_secs(
                raw.ledger
                    .as_ref()
                    .and_then(|l| l.retention_minutes)
                    .unwrap_or(DEFAULT_LEDGER_RETENTION_MINUTES)
                    .saturating_mul(60),
            ),
            ledger_memory_limit: self.memory_limit(raw.ledger.as_ref())?,
            units,
            assign,
            fallback,
            fee_accounts,
            pools,
            step_down,
            settlements,
            cubes: Vec::new(),
            users: Vec::new(),
        };
        let accounts = model.accounts();
        for (i, c) in raw.cubes.iter().enumerate() {
            let span = c.span();
            let key = format!("cubes[{i}]");
            let cube = crate::cube::validate(c.get_ref(), &accounts, self.line(&span))
                .map_err(|(k, reason)| self.err(span.clone(), &format!("{key}.{k}"), reason))?;
            if model.cubes.iter().any(|d| d.name == cube.name) {
                return Err(self.err(
                    span,
                    &format!("{key}.name"),
                    format!("cube '{}' is declared twice", cube.name),
                ));
            }
            model.cubes.push(cube);
        }
        for (i, u) in raw.users.iter().enumerate() {
            let user =
                crate::users::validate(u.get_ref(), &model.users, |id| model.unit(id).is_some())
                    .map_err(|(k, reason)| {
                        self.err(u.span(), &format!("users[{i}].{k}"), reason)
                    })?;
            model.users.push(user);
        }
        Ok(model)
    }

    /// `[ledger] memory_limit_mb` in bytes: at least the 64 MiB a build's hash joins and
    /// sort buffers need before anything spills.
    fn memory_limit(&self, ledger: Option<&RawLedger>) -> Result<Option<usize>> {
        let Some(mb) = ledger.and_then(|l| l.memory_limit_mb.as_ref()) else {
            return Ok(None);
        };
        let key = "ledger.memory_limit_mb";
        if *mb.get_ref() < MIN_LEDGER_MEMORY_MB {
            return Err(self.err(
                mb.span(),
                key,
                format!(
                    "{} MiB is too little for a build: at least {MIN_LEDGER_MEMORY_MB}",
                    mb.get_ref()
                ),
            ));
        }
        mb.get_ref()
            .checked_mul(1024 * 1024)
            .and_then(|bytes| usize::try_from(bytes).ok())
            .map(Some)
            .ok_or_else(|| {
                self.err(
                    mb.span(),
                    key,
                    format!("{} MiB is more than this machine can address", mb.get_ref()),
                )
            })
    }

    fn units(&self, raw: &[Spanned<RawUnit>]) -> Result<Vec<Unit>> {
        let mut units: Vec<Unit> = Vec::new();
        let mut roots = Vec::new();
        for (i, u) in raw.iter().enumerate() {
            let span = u.span();
            let key = format!("units[{i}]");
            let r = u.get_ref();
            if r.id.is_empty() || r.id.contains(['\'', '"', ' ']) {
                return Err(self.err(span, &format!("{key}.id"), format!("invalid id '{}'", r.id)));
            }
            if units.iter().any(|x| x.id == r.id) {
                return Err(self.err(
                    span,
                    &format!("{key}.id"),
                    format!("unit '{}' is declared twice", r.id),
                ));
            }
            match (r.kind, &r.parent) {
                (UnitKind::Company, Some(_)) => {
                    return Err(self.err(
                        span,
                        &format!("{key}.parent"),
                        "the company unit is the root: it has no parent".into(),
                    ));
                }
                (UnitKind::Company, None) => roots.push((r.id.clone(), span.clone())),
                (_, None) => {
                    return Err(self.err(
                        span,
                        &format!("{key}.parent"),
                        format!("unit '{}' needs a parent", r.id),
                    ));
                }
                _ => {}
            }
            units.push(Unit {
                id: r.id.clone(),
                name: r.name.clone(),
                kind: r.kind,
                parent: r.parent.clone(),
                headcount: r.headcount,
                area: r.area,
            });
        }
        let root = match roots.as_slice() {
            [(id, _)] => id.clone(),
            [] => {
                return Err(CatalogError::model(
                    self.file,
                    Some("units"),
                    "no unit has kind = \"company\" (the root)".into(),
                    None,
                    self.text,
                ));
            }
            [_, (id, span), ..] => {
                return Err(self.err(
                    span.clone(),
                    "units",
                    format!("a second company unit '{id}': the tree has one root"),
                ));
            }
        };
        // Every parent exists and every unit reaches the root (no cycles).
        for (i, u) in units.iter().enumerate() {
            let span = raw.get(i).map(Spanned::span).unwrap_or_default();
            let mut seen = BTreeSet::new();
            let mut at = u;
            while let Some(p) = &at.parent {
                if !seen.insert(at.id.clone()) {
                    return Err(self.err(
                        span,
                        &format!("units[{i}].parent"),
                        format!("unit '{}' is in a cycle of parents", u.id),
                    ));
                }
                at = units.iter().find(|x| &x.id == p).ok_or_else(|| {
                    self.err(
                        span.clone(),
                        &format!("units[{i}].parent"),
                        format!("unknown parent '{p}'"),
                    )
                })?;
            }
            if at.id != root {
                return Err(self.err(
                    span,
                    &format!("units[{i}]"),
                    format!("unit '{}' does not reach the root", u.id),
                ));
            }
        }
        // The root first.
        units.sort_by_key(|u| u.id != root);
        Ok(units)
    }

    fn targets(
        &self,
        raw: Option<&RawTargets>,
        span: &std::ops::Range<usize>,
        key: &str,
        known: &KnownUnit<'_>,
    ) -> Result<Targets> {
        match raw {
            None => Ok(Targets::Profit),
            Some(RawTargets::Word(w)) if w == "profit" => Ok(Targets::Profit),
            Some(RawTargets::Word(w)) => Err(self.err(
                span.clone(),
                &format!("{key}.targets"),
                format!("'{w}': expected \"profit\" or a list of unit ids"),
            )),
            Some(RawTargets::List(list)) => {
                if list.is_empty() {
                    return Err(self.err(
                        span.clone(),
                        &format!("{key}.targets"),
                        "the list of targets is empty".into(),
                    ));
                }
                for id in list {
                    known(id, span, &format!("{key}.targets"))?;
                }
                Ok(Targets::Units(list.clone()))
            }
        }
    }

    fn percentages(
        &self,
        driver: Driver,
        raw: &BTreeMap<String, RawNumber>,
        targets: &Targets,
        span: &std::ops::Range<usize>,
        key: &str,
        known: &KnownUnit<'_>,
    ) -> Result<BTreeMap<String, i128>> {
        if driver != Driver::Fixed {
            if !raw.is_empty() {
                return Err(self.err(
                    span.clone(),
                    &format!("{key}.percentages"),
                    "percentages need driver = \"fixed\"".into(),
                ));
            }
            return Ok(BTreeMap::new());
        }
        let mut out = BTreeMap::new();
        for (unit, n) in raw {
            known(unit, span, &format!("{key}.percentages"))?;
            if let Targets::Units(list) = targets
                && !list.contains(unit)
            {
                return Err(self.err(
                    span.clone(),
                    &format!("{key}.percentages.{unit}"),
                    format!("'{unit}' is not one of the targets"),
                ));
            }
            out.insert(
                unit.clone(),
                self.decimal(n, span, &format!("{key}.percentages.{unit}"))?,
            );
        }
        let total: i128 = out.values().sum();
        if total != 100 * 10_000 {
            return Err(self.err(
                span.clone(),
                &format!("{key}.percentages"),
                format!("percentages sum to {}, not 100", format_e4(total)),
            ));
        }
        Ok(out)
    }

    /// An exact decimal with at most 4 decimals, scaled by 10^4. Floats are refused: money and
    /// rates are written as integers or strings ("2.50").
    fn decimal(&self, raw: &RawNumber, span: &std::ops::Range<usize>, key: &str) -> Result<i128> {
        match raw {
            RawNumber::Int(i) => Ok(i128::from(*i) * 10_000),
            RawNumber::Text(t) => parse_e4(t).ok_or_else(|| {
                self.err(
                    span.clone(),
                    key,
                    format!("'{t}' is not a decimal with at most 4 decimals"),
                )
            }),
            RawNumber::Float(f) => Err(self.err(
                span.clone(),
                key,
                format!("{f} is a float: write the exact decimal as a string (\"{f}\")"),
            )),
        }
    }

    fn month(&self, raw: &str, span: &std::ops::Range<usize>, key: &str) -> Result<String> {
        let ok = raw.len() >= 7
            && raw.is_char_boundary(7)
            && raw[..7].chars().enumerate().all(
                |(i, c)| {
                    if i == 4 { c == '-' } else { c.is_ascii_digit() }
                },
            )
            && raw[5..7]
                .parse::<u32>()
                .is_ok_and(|m| (1..=12).contains(&m));
        if ok && (raw.len() == 7 || raw.len() == 10) {
            Ok(raw[..7].to_string())
        } else {
            Err(self.err(
                span.clone(),
                key,
                format!("'{raw}' is not a month (YYYY-MM or YYYY-MM-DD)"),
            ))
        }
    }
}

/// `12.5` → 125000.
pub fn parse_e4(t: &str) -> Option<i128> {
    let t = t.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty()
        || frac.len() > 4
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int: i128 = int.parse().ok()?;
    let frac_val: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<4}").parse().ok()?
    };
    let v = int.checked_mul(10_000)?.checked_add(frac_val)?;
    Some(if neg { -v } else { v })
}

/// 125000 → `12.5000`.
pub fn format_e4(v: i128) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:04}", a / 10_000, a % 10_000)
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |head| head.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
[costing]
method = "moving_average"

[[units]]
id = "C"
name = "公司"
kind = "company"

[[units]]
id = "P1"
name = "一组"
kind = "profit"
parent = "C"

[[units]]
id = "S1"
name = "仓储"
kind = "service"
parent = "C"

[[assign]]
platform = "tmall"
unit = "P1"

[[assign]]
platform = "tmall"
sku = "X"
unit = "S1"

[[settlements]]
name = "wh"
provider = "S1"
basis = "per_order"
rate = "2.50"
from = "2025-01"
"#;

    #[test]
    fn ledger_retention_is_read_and_checked() {
        let m = Model::parse(
            "model.toml",
            &format!("{SMALL}\n[ledger]\nretention_minutes = 5\n"),
        )
        .expect("parses");
        assert_eq!(m.ledger_retention, std::time::Duration::from_secs(300));
        assert_eq!(m.ledger_memory_limit, None);
        let m = Model::parse(
            "model.toml",
            &format!("{SMALL}\n[ledger]\nmemory_limit_mb = 6144\n"),
        )
        .expect("parses");
        assert_eq!(m.ledger_memory_limit, Some(6144 * 1024 * 1024));
        let e = Model::parse(
            "model.toml",
            &format!("{SMALL}\n[ledger]\nmemory_limit_mb = 8\n"),
        )
        .expect_err("too little");
        assert!(
            e.to_string().contains("ledger.memory_limit_mb") && e.to_string().contains("8 MiB"),
            "{e}"
        );
        let e = Model::parse(
            "model.toml",
            &format!("{SMALL}\n[ledger]\nkeep_minutes = 5\n"),
        )
        .expect_err("unknown key");
        assert!(e.to_string().contains("keep_minutes"), "{e}");
    }

    #[test]
    fn parses_and_orders_rules_by_specificity() {
        let m = Model::parse("model.toml", SMALL).expect("parses");
        assert_eq!(m.costing, CostingMethod::MovingAverage);
        assert_eq!(m.ledger_retention, std::time::Duration::from_secs(3600));
        assert_eq!(m.root(), "C");
        assert_eq!(m.assign.first().map(|r| r.unit.as_str()), Some("S1"));
        assert_eq!(m.settlements.first().map(|s| s.rate_e4), Some(25_000));
        assert_eq!(m.subtree("C").len(), 3);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let bad = SMALL.replace("unit = \"S1\"", "unit = \"S9\"");
        let e = Model::parse("model.toml", &bad)
            .expect_err("unknown unit")
            .to_string();
        assert!(e.contains("model.toml:26"), "{e}");
        assert!(e.contains("assign[1].unit"), "{e}");
        assert!(e.contains("unknown unit 'S9'"), "{e}");

        let bad = SMALL.replace("rate = \"2.50\"", "rate = 2.5");
        let e = Model::parse("model.toml", &bad)
            .expect_err("float")
            .to_string();
        assert!(
            e.contains("settlements[0].rate") && e.contains("float"),
            "{e}"
        );

        let bad = SMALL.replace(
            "parent = \"C\"\n\n[[units]]\nid = \"S1\"",
            "parent = \"S1\"\n\n[[units]]\nid = \"S1\"",
        );
        let bad = bad.replacen(
            "kind = \"service\"\nparent = \"C\"",
            "kind = \"service\"\nparent = \"P1\"",
            1,
        );
        let e = Model::parse("model.toml", &bad)
            .expect_err("cycle")
            .to_string();
        assert!(e.contains("cycle"), "{e}");

        let e = Model::parse("model.toml", "units = 3")
            .expect_err("type")
            .to_string();
        assert!(e.starts_with("model model.toml:1"), "{e}");
    }

    const CUBE: &str = r#"
[[cubes]]
name = "by_unit"
dimensions = ["unit_id", "month", "parent_unit_id"]
measures = ["layers", "units_sold"]
kpis = ["roi"]
grouping_sets = [["parent_unit_id"], ["unit_id", "parent_unit_id"], []]
"#;

    fn cube_error(replace: &str, with: &str) -> String {
        let text = format!("{SMALL}{}", CUBE.replace(replace, with));
        Model::parse("model.toml", &text)
            .expect_err(with)
            .to_string()
    }

    #[test]
    fn cubes_are_declared_with_month_measures_kpis_and_sets() {
        let m = Model::parse("model.toml", &format!("{SMALL}{CUBE}")).expect("parses");
        let c = m.cube("by_unit").expect("cube");
        use crate::cube::Dimension::*;
        assert_eq!(c.dimensions, vec![Month, UnitId, ParentUnitId]);
        // The finest set first; month in every set.
        assert_eq!(
            c.grouping_sets,
            vec![
                vec![Month, UnitId, ParentUnitId],
                vec![Month, ParentUnitId],
                vec![Month]
            ]
        );
        let names: Vec<&str> = c.measures.iter().map(|m| m.name.as_str()).collect();
        // roi's parts are stored with the declared measures.
        assert_eq!(
            names,
            [
                "net_sales",
                "gross_profit",
                "cm2",
                "cm3",
                "net_profit",
                "units_sold",
                "advertising"
            ]
        );
        assert_eq!(c.retention, std::time::Duration::from_secs(3600));
        assert!(m.accounts().contains(&"allocated_other".to_string()));
    }

    #[test]
    fn bad_cubes_are_errors_naming_the_key() {
        let e = cube_error("\"unit_id\", \"month\"", "\"unit_id\"");
        assert!(
            e.contains("cubes[0].dimensions") && e.contains("month"),
            "{e}"
        );
        assert!(e.contains("model.toml:"), "{e}");
        let e = cube_error("\"parent_unit_id\"]\nmeasures", "\"shop\"]\nmeasures");
        assert!(
            e.contains("unknown dimension 'shop'") && e.contains("shop_id"),
            "{e}"
        );
        let e = cube_error("kpis = [\"roi\"]", "kpis = [\"roe\"]");
        assert!(
            e.contains("cubes[0].kpis") && e.contains("unknown KPI 'roe'"),
            "{e}"
        );
        let e = cube_error("\"units_sold\"]", "\"profit\"]");
        assert!(
            e.contains("cubes[0].measures") && e.contains("unknown measure 'profit'"),
            "{e}"
        );
        let e = cube_error(
            "[\"parent_unit_id\"], [\"unit_id\"",
            "[\"sku\"], [\"unit_id\"",
        );
        assert!(
            e.contains("cubes[0].grouping_sets[0]") && e.contains("'sku'"),
            "{e}"
        );
        // hours are kept per unit and month: fine here, refused with a SKU dimension (below).
        let with_hours = CUBE.replace("\"units_sold\"]", "\"hours\"]");
        assert!(Model::parse("model.toml", &format!("{SMALL}{with_hours}")).is_ok());
        let e = cube_error("kpis = [\"roi\"]", "labour_accounts = [\"wages\"]");
        assert!(
            e.contains("cubes[0].labour_accounts") && e.contains("'wages'"),
            "{e}"
        );
        let text = format!(
            "{SMALL}{}",
            CUBE.replace("\"units_sold\"]", "\"hours\"]").replace(
                "\"parent_unit_id\"]\nmeasures",
                "\"parent_unit_id\", \"sku\"]\nmeasures"
            )
        );
        let e = Model::parse("model.toml", &text)
            .expect_err("hours by sku")
            .to_string();
        assert!(
            e.contains("hours are per unit and month") && e.contains("'sku'"),
            "{e}"
        );
        let text = format!("{SMALL}{CUBE}{CUBE}");
        let e = Model::parse("model.toml", &text)
            .expect_err("twice")
            .to_string();
        assert!(
            e.contains("cubes[1].name") && e.contains("declared twice"),
            "{e}"
        );
    }

    #[test]
    fn users_have_roles_and_leaders_lead_a_known_unit() {
        let users = "\n[[users]]\nname = \"boss\"\nrole = \"admin\"\n\n\
                     [[users]]\nname = \"li\"\nrole = \"unit_leader\"\nunit = \"P1\"\n";
        let m = Model::parse("model.toml", &format!("{SMALL}{users}")).expect("users");
        assert_eq!(m.user("boss").map(|u| u.role), Some(crate::Role::Admin));
        let li = m.user("li").expect("li");
        assert_eq!(
            (li.role, li.unit.as_deref()),
            (crate::Role::UnitLeader, Some("P1"))
        );
        assert!(m.user("nobody").is_none());
        let with_passwords = users
            .replace(
                "\"admin\"\n",
                "\"admin\"\npassword = \"SCRAM-SHA-256$4096:c2FsdA==$YQ==:Yg==\"\n",
            )
            .replace(
                "\"P1\"\n",
                "\"P1\"\npassword_env = \"AMOEBA_PASSWORD_LI\"\n",
            );
        let m = Model::parse("model.toml", &format!("{SMALL}{with_passwords}")).expect("passwords");
        assert!(matches!(
            m.user("boss").and_then(|u| u.password.clone()),
            Some(crate::users::Password::Verifier(_))
        ));
        assert_eq!(
            m.user("li").and_then(|u| u.password.clone()),
            Some(crate::users::Password::Env(
                "AMOEBA_PASSWORD_LI".to_string()
            ))
        );

        for (bad, key, says) in [
            (
                users.replace("\"P1\"", "\"P9\""),
                "users[1].unit",
                "unknown unit 'P9'",
            ),
            (
                users.replace("unit = \"P1\"\n", ""),
                "users[1].unit",
                "name the unit",
            ),
            (
                users.replace("\"li\"", "\"boss\""),
                "users[1].name",
                "declared twice",
            ),
            (
                users.replace("\"unit_leader\"", "\"analyst\""),
                "users[1].unit",
                "only a unit_leader",
            ),
            (
                users.replace("\"admin\"", "\"root\""),
                "model.toml:",
                "unknown variant",
            ),
            (
                users.replace("\"admin\"\n", "\"admin\"\npassword = \"secret\"\n"),
                "users[0].password",
                "never write a password",
            ),
            (
                users.replace("\"admin\"\n", "\"admin\"\npassword_env = \"A B\"\n"),
                "users[0].password_env",
                "invalid variable name",
            ),
        ] {
            let e = Model::parse("model.toml", &format!("{SMALL}{bad}"))
                .expect_err(says)
                .to_string();
            assert!(e.contains(key) && e.contains(says), "{e}");
        }
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_e4("2.5"), Some(25_000));
        assert_eq!(parse_e4("-0.0001"), Some(-1));
        assert_eq!(parse_e4("1.23456"), None);
        assert_eq!(parse_e4("abc"), None);
        assert_eq!(format_e4(-25_000), "-2.5000");
    }
}
