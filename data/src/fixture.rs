//! The worked example of `spec/pnl.md`, as a small hand-made warehouse.
//!
//! "A product sells 1,000 orders, gross margin 30%; ads 2,000, warehousing 500, return rate
//! 12%, packaging 0.8 per order, customer-service pay 4,000: after full-cost allocation its net
//! margin falls below 5%." [`worked_example`] writes exactly that, in the formats the catalog
//! reads (the generator's layouts, file names, columns and Arrow types — the column lists are
//! the generator's own), for one Tmall shop `tm901` selling one SKU `DEMO-1` in March 2025:
//!
//! | file | rows | content |
//! |---|---|---|
//! | `exports/tmall/orders`, `order_items` | 1,000 each | one line per order, qty 1 at 60.00, paid 2025-03-01 … 03-20 |
//! | (the same) | 120 of them | 交易关闭, 退款成功 60.00 five days after payment (the returns) |
//! | `exports/tmall/ledger` | 880 | 天猫佣金 −3.00 per kept order, at receipt |
//! | `exports/tmall/ads` | 1 | 2025-03-10, 花费 2,000.00 on `DEMO-1` |
//! | `logistics/waybills` | 1,120 | 发货 per order and 退货 per return, 4.00 each |
//! | `erp/purchases` | 1 | 1,000 × `DEMO-1` at 42.0000, received 2025-02-25 |
//! | `finance/expenses` | 2 | 2025-03 包装材料 800.00 and 客服工资 4,000.00 on 公共 |
//! | `erp/skus`, `erp/shops` | 1 each | `DEMO-1` (brand 演示); `tm901` (brand 演示, team 演示组) |
//! | `model/model.toml` | | [`WORKED_EXAMPLE_MODEL`] (`data/model/worked_example.toml`) |
//!
//! With that model the ledger gives unit `P1` a net profit of 1,420.00 on 52,800.00 of net
//! sales (2.69 %); `docs/model.md` walks through it line by line. There is no `truth/` and no
//! delivery quirk: every file is delivered once.

use std::path::Path;

use crate::company::{EXPENSES, PURCHASES, SHOPS, SKUS, WAYBILLS};
use crate::error::{DataError, Result};
use crate::platforms::tmall::{ADS, CLOSED, ITEMS, LEDGER, ORDERS, REFUNDED, SUCCESS};
use crate::shape::{DAY, HOUR, MINUTE, START, date32, ymd};
use crate::table::TableBuilder;
use crate::write::{Sink, Tally};

/// The model of the worked example (`data/model/worked_example.toml`), written to
/// `<out>/model/model.toml`.
pub const WORKED_EXAMPLE_MODEL: &str = include_str!("../model/worked_example.toml");

/// The shop.
const SHOP: &str = "tm901";
/// The SKU.
const SKU: &str = "DEMO-1";
/// Paid orders, one line of one unit each.
const ORDERS_N: i64 = 1_000;
/// List price, cents.
const PRICE_C: i64 = 6_000;
/// Carrier freight per waybill (outbound or return), cents.
const FREIGHT_C: i64 = 400;
/// 天猫佣金 per kept order (5 % of 60.00), cents.
const COMMISSION_C: i64 = 300;
/// Purchase unit cost, 1/10 000 yuan.
const UNIT_COST_C4: i64 = 420_000;
/// Billed parcel weight, grams (0.5 kg of goods and 80 g of packaging).
const PARCEL_G: i64 = 580;
/// The platform export partition of March 2025.
const DT: &str = "dt=2025-03-31";

/// Midnight of a day of March 2025 (local time, seconds).
fn march(day: i64) -> i64 {
    // 2025-03-01 is day 59 (0-based) of the year.
    START + (58 + day) * DAY
}

/// One order of the example, with everything that happens to it.
struct Order {
    id: String,
    seq: i64,
    created: i64,
    paid: i64,
    /// Outbound waybill: shipped the day after payment.
    shipped: i64,
    /// Returned and refunded in full: (return shipped, refund completed).
    returned: Option<(i64, i64)>,
    /// Receipt confirmed (kept orders only).
    received: Option<i64>,
}

impl Order {
    fn new(seq: i64) -> Order {
        // 50 orders a day over 2025-03-01 … 03-20, ten minutes apart from 09:00.
        let day = 1 + (seq - 1) % 20;
        let created = march(day) + 9 * HOUR + (seq - 1) / 20 * 10 * MINUTE;
        let paid = created + 2 * MINUTE;
        // 3 orders in every 25: 120 returns, a 12 % return rate.
        let returned = matches!(seq % 25, 5 | 13 | 21).then(|| (paid + 3 * DAY, paid + 5 * DAY));
        Order {
            id: format!("3901{seq:08}"),
            seq,
            created,
            paid,
            shipped: paid + DAY,
            returned,
            received: returned.is_none().then_some(paid + 4 * DAY),
        }
    }

    fn line_id(&self) -> String {
        format!("{}01", self.id)
    }

    fn status(&self) -> &'static str {
        if self.returned.is_some() {
            CLOSED
        } else {
            SUCCESS
        }
    }

    fn waybill(&self) -> String {
        format!("SF901{:07}", self.seq)
    }
}

/// Writes the worked example into `out` (created if missing; files of the same names are
/// replaced, nothing else is touched).
pub fn worked_example(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(DataError::io(out))?;
    let sink = Sink::new(out);
    let mut tally = Tally::default();
    let orders: Vec<Order> = (1..=ORDERS_N).map(Order::new).collect();
    let tmall =
        |kind: &str| format!("exports/tmall/{kind}/shop={SHOP}/{DT}/part-202503-0001.parquet");

    let mut t = TableBuilder::new("orders", ORDERS)?;
    for o in &orders {
        t.s(&o.id);
        t.s(&format!("tb_demo{:04}", o.seq));
        t.d(PRICE_C); // 买家应付货款
        t.d(0); // 买家应付邮费
        t.d(PRICE_C); // 总金额
        t.d(PRICE_C); // 买家实际支付金额
        t.s(o.status());
        t.t(o.created);
        t.t(o.paid);
        t.ot(o.received);
        t.i(1);
        t.s(SHOP);
        t.s("演示旗舰店");
        t.s(&o.waybill());
        t.s("顺丰速运");
        t.d(0); // 天猫卡券抵扣
        t.d(0); // 集分宝抵扣
    }
    write(&sink, &tmall("orders"), t, &mut tally)?;

    let mut t = TableBuilder::new("order_items", ITEMS)?;
    for o in &orders {
        t.s(&o.id);
        t.s(&o.line_id());
        t.s("演示商品 DEMO-1");
        t.d(PRICE_C);
        t.i(1);
        t.s(SKU);
        t.s(o.status());
        match o.returned {
            Some((_, refunded)) => {
                t.s(REFUNDED);
                t.d(PRICE_C);
                t.t(refunded);
            }
            None => {
                t.s("");
                t.d(0);
                t.ot(None);
            }
        }
        t.d(0); // 店铺优惠
    }
    write(&sink, &tmall("order_items"), t, &mut tally)?;

    // The commission is taken when the buyer confirms receipt; returned orders pay none.
    let mut kept: Vec<&Order> = orders.iter().filter(|o| o.received.is_some()).collect();
    kept.sort_by_key(|o| (o.received, o.seq));
    let mut t = TableBuilder::new("ledger", LEDGER)?;
    for (n, o) in kept.iter().enumerate() {
        let at = o.received.unwrap_or(o.paid);
        t.s(&format!("{}901{:09}", ymd(at), n + 1));
        t.s(&format!("{}2200{}", ymd(o.paid), o.id));
        t.s(&o.id);
        t.t(at);
        t.d(0);
        t.d(-COMMISSION_C);
        t.s("天猫佣金");
        t.s("天猫佣金（类目费率5%）");
    }
    write(&sink, &tmall("ledger"), t, &mut tally)?;

    let mut t = TableBuilder::new("ads", ADS)?;
    t.date(date32(march(10)));
    t.s("万相台-货品加速-DEMO-1");
    t.s(SKU);
    t.d(200_000); // 花费
    t.i(80_000); // 展现量
    t.i(2_400); // 点击量
    t.d(600_000); // 总成交金额
    t.i(100); // 总成交笔数
    write(&sink, &tmall("ads"), t, &mut tally)?;

    // Carrier bills: every order out, every return back.
    let mut bills: Vec<(i64, String, &Order, &str)> = Vec::new();
    for o in &orders {
        bills.push((o.shipped, o.waybill(), o, "发货"));
        if let Some((back, _)) = o.returned {
            bills.push((back, format!("SF901R{:06}", o.seq), o, "退货"));
        }
    }
    bills.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut t = TableBuilder::new("logistics/waybills", WAYBILLS)?;
    for (at, no, o, kind) in &bills {
        t.s(no);
        t.s("顺丰速运");
        t.s(&o.id);
        t.t(*at);
        t.d(PARCEL_G);
        t.d(FREIGHT_C);
        t.s(kind);
    }
    write(
        &sink,
        "logistics/waybills/part-202503-0001.parquet",
        t,
        &mut tally,
    )?;

    let mut t = TableBuilder::new("erp/purchases", PURCHASES)?;
    t.s("RK202502250001");
    t.s(SKU);
    t.s("杭州仓");
    t.t(START + (31 + 24) * DAY + 10 * HOUR); // 2025-02-25 10:00
    t.i(ORDERS_N);
    t.d(UNIT_COST_C4);
    t.d(0); // 采购运费
    write(
        &sink,
        "erp/purchases/part-202502-0001.parquet",
        t,
        &mut tally,
    )?;

    let mut t = TableBuilder::new("finance/expenses", EXPENSES)?;
    for (category, cents) in [("包装材料", 80_000), ("客服工资", 400_000)] {
        t.s("2025-03");
        t.s(category);
        t.s("公共");
        t.d(cents);
    }
    write(
        &sink,
        "finance/expenses/part-202503-0001.parquet",
        t,
        &mut tally,
    )?;

    let mut t = TableBuilder::new("erp/skus", SKUS)?;
    t.s(SKU);
    t.s("DEMO");
    t.s("演示");
    t.s("演示类目");
    t.d(500); // 0.500 kg
    t.oi(None);
    t.s("演示供应商");
    write(&sink, "erp/skus/part-0001.parquet", t, &mut tally)?;

    let mut t = TableBuilder::new("erp/shops", SHOPS)?;
    t.s("tmall");
    t.s(SHOP);
    t.s("演示旗舰店");
    t.s("演示");
    t.s("演示组");
    write(&sink, "erp/shops/part-0001.parquet", t, &mut tally)?;

    let dir = out.join("model");
    std::fs::create_dir_all(&dir).map_err(DataError::io(&dir))?;
    let file = dir.join("model.toml");
    std::fs::write(&file, WORKED_EXAMPLE_MODEL).map_err(DataError::io(&file))?;
    log::info!(
        "wrote the worked example under {}: {} files, {} rows",
        out.display(),
        tally.files,
        tally.rows
    );
    Ok(())
}

fn write(sink: &Sink, rel: &str, t: TableBuilder, tally: &mut Tally) -> Result<()> {
    sink.write_one(rel, &t.finish()?, tally)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use datafusion::arrow::array::{Array, AsArray, RecordBatch};
    use datafusion::arrow::datatypes::Decimal128Type;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::table::Col;

    /// The column names of a layout.
    fn names(cols: &[Col]) -> Vec<&'static str> {
        cols.iter().map(|c| c.name).collect()
    }

    fn files(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel: Vec<String> = p
                        .strip_prefix(root)
                        .unwrap()
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    out.push(rel.join("/"));
                }
            }
        }
        out.sort();
        out
    }

    fn read(path: &Path) -> RecordBatch {
        let f = std::fs::File::open(path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    fn cents(b: &RecordBatch, col: &str) -> i128 {
        let a = b
            .column_by_name(col)
            .unwrap()
            .as_primitive::<Decimal128Type>();
        (0..a.len())
            .filter(|i| !a.is_null(*i))
            .map(|i| a.value(i))
            .sum()
    }

    fn count(b: &RecordBatch, col: &str, value: &str) -> usize {
        let a = b.column_by_name(col).unwrap().as_string::<i32>();
        (0..a.len())
            .filter(|i| !a.is_null(*i) && a.value(*i) == value)
            .count()
    }

    #[test]
    fn writes_the_expected_files() {
        let dir: PathBuf =
            std::env::temp_dir().join(format!("amoeba-fixture-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        worked_example(&dir).unwrap();
        let tm = |kind: &str| {
            format!("exports/tmall/{kind}/shop=tm901/dt=2025-03-31/part-202503-0001.parquet")
        };
        let mut expected = vec![
            tm("orders"),
            tm("order_items"),
            tm("ledger"),
            tm("ads"),
            "logistics/waybills/part-202503-0001.parquet".to_string(),
            "erp/purchases/part-202502-0001.parquet".to_string(),
            "erp/skus/part-0001.parquet".to_string(),
            "erp/shops/part-0001.parquet".to_string(),
            "finance/expenses/part-202503-0001.parquet".to_string(),
            "model/model.toml".to_string(),
        ];
        expected.sort();
        assert_eq!(files(&dir), expected);
        assert_eq!(
            std::fs::read_to_string(dir.join("model/model.toml")).unwrap(),
            WORKED_EXAMPLE_MODEL
        );

        let mut rows = BTreeMap::new();
        let mut batches = BTreeMap::new();
        for f in expected.iter().filter(|f| f.ends_with(".parquet")) {
            let b = read(&dir.join(f));
            rows.insert(f.clone(), b.num_rows());
            batches.insert(f.clone(), b);
        }
        let get = |f: &str| batches.get(f).unwrap();
        // Same columns, in the same order, as the generator writes.
        for (f, cols) in [
            (tm("orders"), ORDERS),
            (tm("order_items"), ITEMS),
            (tm("ledger"), LEDGER),
            (tm("ads"), ADS),
        ] {
            let schema = get(&f).schema();
            let got: Vec<&str> = schema.fields().iter().map(|x| x.name().as_str()).collect();
            assert_eq!(got, names(cols), "{f}");
            assert_eq!(
                schema.as_ref(),
                crate::table::schema_of(cols).as_ref(),
                "{f}"
            );
        }
        assert_eq!(rows[&tm("orders")], 1_000);
        assert_eq!(rows[&tm("order_items")], 1_000);
        assert_eq!(rows[&tm("ledger")], 880);
        assert_eq!(rows[&tm("ads")], 1);
        assert_eq!(rows["logistics/waybills/part-202503-0001.parquet"], 1_120);
        assert_eq!(rows["finance/expenses/part-202503-0001.parquet"], 2);

        let items = get(&tm("order_items"));
        assert_eq!(cents(items, "价格"), 6_000_000);
        assert_eq!(count(items, "退款状态", "退款成功"), 120);
        assert_eq!(cents(items, "退款金额"), 720_000);
        assert_eq!(count(items, "订单状态", "交易成功"), 880);
        assert_eq!(count(get(&tm("orders")), "订单状态", "交易关闭"), 120);
        assert_eq!(cents(get(&tm("ledger")), "支出金额（-元）"), -264_000);
        assert_eq!(cents(get(&tm("ads")), "花费"), 200_000);
        let waybills = get("logistics/waybills/part-202503-0001.parquet");
        assert_eq!(cents(waybills, "运费"), 448_000);
        assert_eq!(count(waybills, "类型", "退货"), 120);
        assert_eq!(
            cents(get("finance/expenses/part-202503-0001.parquet"), "金额"),
            480_000
        );
        assert_eq!(
            cents(get("erp/purchases/part-202502-0001.parquet"), "含税单价"),
            420_000
        );

        // Writing again replaces the files.
        worked_example(&dir).unwrap();
        assert_eq!(files(&dir), expected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
