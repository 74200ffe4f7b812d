//! The catalog against the generator's truth: for every unified view, at two scales and two
//! seeds, the served rows equal the truth rows exactly — same multiset, to the cent — with
//! re-delivered and corrected files in the warehouse.

use amoeba_catalog::UNIFIED_VIEWS;

use datafusion::prelude::SessionContext;

use crate::support::{rows, scalar, session, warehouse};

async fn assert_views_equal_truth(scale: f64, seed: u64) {
    let path = warehouse(scale, seed);
    let (ctx, catalog) = session(&path).await;
    assert!(
        catalog.rejections().is_empty(),
        "rejections: {:?}",
        catalog.rejections()
    );
    assert_session_equals_truth(&ctx, &format!("scale {scale} seed {seed}")).await;
}

/// Every unified view of `ctx` equals its `truth_<view>` table, row for row.
pub(crate) async fn assert_session_equals_truth(ctx: &SessionContext, what: &str) {
    let ctx = ctx.clone();

    // The warehouse really has the delivery quirks the de-duplication must survive.
    for marker in ["redelivery", "correction"] {
        let n = scalar(
            &ctx,
            &format!("SELECT count(*) FROM amoeba_files WHERE path LIKE '%{marker}%'"),
        )
        .await;
        assert_ne!(n, "0", "{what}: no {marker} files generated");
    }

    for view in UNIFIED_VIEWS {
        let columns: Vec<String> = view
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect();
        let columns = columns.join(", ");
        let served = scalar(&ctx, &format!("SELECT count(*) FROM {}", view.name)).await;
        let truth = scalar(&ctx, &format!("SELECT count(*) FROM truth_{}", view.name)).await;
        assert_eq!(
            served, truth,
            "{what}: {} has {served} rows, truth {truth}",
            view.name
        );
        assert_ne!(served, "0", "{what}: {} is empty", view.name);
        for (left, right) in [
            (view.name.to_string(), format!("truth_{}", view.name)),
            (format!("truth_{}", view.name), view.name.to_string()),
        ] {
            let sql = format!(
                "SELECT {columns} FROM {left} EXCEPT ALL SELECT {columns} FROM {right} LIMIT 5"
            );
            let extra = rows(&ctx, &sql).await;
            assert!(
                extra.is_empty(),
                "{what}: rows in {left} but not in {right}:\n{}",
                extra
                    .iter()
                    .map(|r| r.join(" | "))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }

    // The acceptance query of the README, against the truth, to the cent.
    let sql = "SELECT platform, count(*), sum(net_sales) FROM {} GROUP BY 1 ORDER BY 1";
    let served = rows(&ctx, &sql.replace("{}", "order_lines")).await;
    let truth = rows(&ctx, &sql.replace("{}", "truth_order_lines")).await;
    assert_eq!(served.len(), 4, "four platforms: {served:?}");
    assert_eq!(served, truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_truth_small_seed_1() {
    assert_views_equal_truth(0.005, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_truth_small_seed_2() {
    assert_views_equal_truth(0.005, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_truth_larger_seed_1() {
    assert_views_equal_truth(0.02, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_truth_larger_seed_2() {
    assert_views_equal_truth(0.02, 2).await;
}
