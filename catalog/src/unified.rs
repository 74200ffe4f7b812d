//! The unified schema: the views every platform is mapped to.
//!
//! This is the contract between the mappings (`catalog/mappings/*.toml`, data) and everything
//! downstream (the ledger, cubes, the generator's `truth/`). `docs/unified.md` documents each
//! column per platform; this module fixes names, types and nullability. The catalog casts every
//! mapped expression to the type declared here, and a row whose non-nullable column comes out
//! NULL (an unparseable amount, a missing key) is rejected and reported, never served half-empty.

use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// A column of a unified view.
#[derive(Debug, Clone, Copy)]
pub struct UnifiedColumn {
    /// Column name, as served.
    pub name: &'static str,
    /// Arrow type the mapped expression is cast to.
    pub data_type: UnifiedType,
    /// Whether NULL is a legitimate value (otherwise a NULL rejects the row).
    pub nullable: bool,
}

/// The handful of types the unified views use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnifiedType {
    /// `Utf8`.
    Text,
    /// `Int64`.
    Int,
    /// `Decimal128(18, 2)`: money.
    Money,
    /// `Decimal128(18, 3)`: weights in kg.
    Weight,
    /// `Decimal128(18, 4)`: unit costs.
    UnitCost,
    /// `Timestamp(Microsecond, None)`: local time (Asia/Shanghai).
    Timestamp,
    /// `Date32`.
    Date,
}

impl UnifiedType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            UnifiedType::Text => DataType::Utf8,
            UnifiedType::Int => DataType::Int64,
            UnifiedType::Money => DataType::Decimal128(18, 2),
            UnifiedType::Weight => DataType::Decimal128(18, 3),
            UnifiedType::UnitCost => DataType::Decimal128(18, 4),
            UnifiedType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            UnifiedType::Date => DataType::Date32,
        }
    }

    /// The type as `arrow_cast` spells it.
    pub(crate) fn arrow_cast_name(self) -> &'static str {
        match self {
            UnifiedType::Text => "Utf8",
            UnifiedType::Int => "Int64",
            UnifiedType::Money => "Decimal128(18, 2)",
            UnifiedType::Weight => "Decimal128(18, 3)",
            UnifiedType::UnitCost => "Decimal128(18, 4)",
            UnifiedType::Timestamp => "Timestamp(Microsecond, None)",
            UnifiedType::Date => "Date32",
        }
    }
}

/// A unified view: its name and columns, in order.
#[derive(Debug, Clone, Copy)]
pub struct UnifiedView {
    /// View name, as served.
    pub name: &'static str,
    /// One line for `\d+` and `amoeba_views`.
    pub description: &'static str,
    /// Columns in order.
    pub columns: &'static [UnifiedColumn],
}

impl UnifiedView {
    /// Looks a column up by name.
    pub fn column(&self, name: &str) -> Option<&UnifiedColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The name of its mapped rows in the `raw` schema (`<view>_mapped`: every mapped row,
    /// complete or not, with its `_delivery`), from which the view and the report of rejected
    /// rows derive.
    pub fn mapped_name(&self) -> String {
        format!("{}_mapped", self.name)
    }
}

const fn col(name: &'static str, data_type: UnifiedType) -> UnifiedColumn {
    UnifiedColumn {
        name,
        data_type,
        nullable: false,
    }
}

const fn opt(name: &'static str, data_type: UnifiedType) -> UnifiedColumn {
    UnifiedColumn {
        name,
        data_type,
        nullable: true,
    }
}

use UnifiedType::{Date, Int, Money, Text, Timestamp, UnitCost, Weight};

/// Every unified view, in the order they are registered.
pub const UNIFIED_VIEWS: &[UnifiedView] = &[
    UnifiedView {
        name: "order_lines",
        description: "one row per paid order line, all platforms",
        columns: &[
            col("platform", Text),
            col("shop_id", Text),
            col("order_id", Text),
            col("line_id", Text),
            col("sku", Text),
            col("qty", Int),
            col("unit_price", Money),
            col("gross_sales", Money),
            col("seller_discount", Money),
            col("platform_subsidy", Money),
            col("shipping_income", Money),
            col("net_sales", Money),
            col("status", Text),
            col("ordered_at", Timestamp),
            col("paid_at", Timestamp),
            opt("completed_at", Timestamp),
            opt("buyer", Text),
            opt("traffic_source", Text),
            opt("creator_id", Text),
            opt("waybill_no", Text),
        ],
    },
    UnifiedView {
        name: "refunds",
        description: "one row per successful refund",
        columns: &[
            col("platform", Text),
            col("shop_id", Text),
            opt("refund_id", Text),
            col("order_id", Text),
            col("line_id", Text),
            col("amount", Money),
            col("refunded_at", Timestamp),
            col("kind", Text),
        ],
    },
    UnifiedView {
        name: "fees",
        description: "platform fees: commissions, service, payment and other fees (income +, expense -)",
        columns: &[
            col("platform", Text),
            col("shop_id", Text),
            opt("order_id", Text),
            opt("line_id", Text),
            col("fee_name", Text),
            opt("account", Text),
            col("amount", Money),
            col("posted_at", Timestamp),
        ],
    },
    UnifiedView {
        name: "ad_spend",
        description: "advertising spend per day, campaign and SKU",
        columns: &[
            col("platform", Text),
            col("shop_id", Text),
            col("date", Date),
            col("campaign", Text),
            opt("sku", Text),
            col("spend", Money),
            opt("impressions", Int),
            opt("clicks", Int),
            col("attributed_sales", Money),
            col("attributed_orders", Int),
        ],
    },
    UnifiedView {
        name: "waybills",
        description: "carrier bills, outbound and return",
        columns: &[
            col("waybill_no", Text),
            col("carrier", Text),
            opt("order_id", Text),
            col("shipped_at", Timestamp),
            col("weight_kg", Weight),
            col("cost", Money),
            col("direction", Text),
        ],
    },
    UnifiedView {
        name: "purchases",
        description: "purchase receipts into the warehouses",
        columns: &[
            col("receipt_id", Text),
            col("sku", Text),
            col("warehouse", Text),
            col("received_at", Timestamp),
            col("qty", Int),
            col("unit_cost", UnitCost),
            col("freight", Money),
        ],
    },
    UnifiedView {
        name: "stock_adjustments",
        description: "stock counts and write-offs (negative qty = loss)",
        columns: &[
            col("adjustment_id", Text),
            col("sku", Text),
            col("warehouse", Text),
            col("date", Date),
            col("qty", Int),
            col("reason", Text),
        ],
    },
    UnifiedView {
        name: "expenses",
        description: "monthly expense ledger by category and cost centre",
        columns: &[
            col("month", Text),
            col("category", Text),
            col("cost_center", Text),
            col("amount", Money),
        ],
    },
    UnifiedView {
        name: "hours",
        description: "monthly labour hours per unit",
        columns: &[
            col("month", Text),
            col("unit_id", Text),
            col("hours", Money),
        ],
    },
    UnifiedView {
        name: "skus",
        description: "the SKU master",
        columns: &[
            col("sku", Text),
            col("spu", Text),
            col("brand", Text),
            col("category", Text),
            col("weight_kg", Weight),
            opt("shelf_life_days", Int),
            col("supplier", Text),
        ],
    },
    UnifiedView {
        name: "shops",
        description: "the shop master",
        columns: &[
            col("platform", Text),
            col("shop_id", Text),
            col("shop_name", Text),
            col("brand", Text),
            col("team", Text),
        ],
    },
];

/// Looks a unified view up by name.
pub fn unified_view(name: &str) -> Option<&'static UnifiedView> {
    UNIFIED_VIEWS.iter().find(|v| v.name == name)
}
