-- Reference values for the real-client compatibility scripts (tests/clients/*).
-- Each block: a `-- name: <check>` line, then one query (ending with `;`) that returns exactly
-- one row with one column. The clients print `RESULT <check>=<value>` for the same figure,
-- computed through their own driver (prepared statements, bound parameters, cursors, pandas);
-- the Rust test runs these literal queries over its own connection and compares the values.

-- name: net_sales_2025_11
select sum(net_sales) from pnl where month = '2025-11';

-- name: net_sales_2025_12
select sum(net_sales) from pnl where month = '2025-12';

-- name: net_profit_on_2025_11_11
select sum(net_profit) from pnl where date = date '2025-11-11';

-- name: order_lines_qty_ge_3
select count(*) from order_lines where qty >= 3;

-- name: order_lines_net_sales_gt_500
select count(*) from order_lines where net_sales > 500.00;

-- name: order_lines_paid_since_2025_12_24
select count(*) from order_lines where paid_at >= timestamp '2025-12-24 00:00:00';

-- name: jd_completed_lines
select count(*) from order_lines where platform = 'jd' and (status = 'completed') = true;

-- name: units_headcount_ge_5
select count(*) from amoeba_units where headcount >= 5;

-- name: last_paid_date
select max(cast(paid_at as date)) from order_lines;

-- name: tmall_q4_lines
select count(*) from order_lines where platform = 'tmall' and paid_at >= timestamp '2025-10-01 00:00:00' and paid_at < timestamp '2026-01-01 00:00:00';

-- name: tmall_q4_net_sales
select sum(net_sales) from order_lines where platform = 'tmall' and paid_at >= timestamp '2025-10-01 00:00:00' and paid_at < timestamp '2026-01-01 00:00:00';

-- name: tmall_nov_filtered_lines
select count(*) from order_lines where platform = 'tmall' and qty >= 2 and net_sales > 100.00 and cast(paid_at as date) >= date '2025-11-01' and paid_at < timestamp '2025-12-01 00:00:00' and (status = 'completed') = true;

-- name: tmall_nov_filtered_net_sales
select sum(net_sales) from order_lines where platform = 'tmall' and qty >= 2 and net_sales > 100.00 and cast(paid_at as date) >= date '2025-11-01' and paid_at < timestamp '2025-12-01 00:00:00' and (status = 'completed') = true;

-- name: unit_u07_net_sales_2025_11
select sum(net_sales) from pnl where unit_id = 'U07' and month = '2025-11';

-- name: unit_u01_net_profit_2025_11
select sum(net_profit) from pnl where unit_id = 'U01' and month = '2025-11';
