// node-postgres (pg) against the Amoeba server: `node client.js` (see ../run.sh node).
//
// Connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (pg reads them itself). Prints
// `RESULT <name>=<value>` for checks of ../checks.sql - numerics as the strings pg returns for
// numeric, counts as integers, dates as YYYY-MM-DD - and asserts the driver's behaviour itself:
// parameterized queries ($1) of every common parameter type, a named prepared statement
// ({name, text, values}) run twice with different values, the types pg returns, transactions.
// Every step runs; exit 1 lists the failed ones.
'use strict';

const { Client, types } = require('pg');

// Dates as their text (YYYY-MM-DD), not a JS Date in the local time zone.
types.setTypeParser(types.builtins.DATE, (v) => v);

const failures = [];

function check(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

function result(name, value) {
  process.stdout.write(`RESULT ${name}=${value}\n`);
}

async function step(label, body) {
  try {
    await body();
    console.error(`ok   ${label}`);
  } catch (e) {
    const extra = e.code ? ` [SQLSTATE ${e.code}]` : '';
    failures.push(`${label}: ${e.message}${extra}`);
    console.error(`FAIL ${label}: ${e.message}${extra}`);
    if (e.stack) console.error(e.stack);
  }
}

// count(*) is bigint: pg returns it as a string of digits.
function asCount(v) {
  check(typeof v === 'string' && /^\d+$/.test(v), `expected a bigint count as a string, got ${typeof v} ${v}`);
  return v;
}

// numeric: pg returns the server's exact text.
function asNumeric(v) {
  check(typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v), `expected numeric text, got ${typeof v} ${v}`);
  return v;
}

async function one(client, query) {
  const res = await client.query(query);
  check(res.rows.length === 1, `expected one row, got ${res.rows.length}`);
  check(res.fields.length === 1, `expected one column, got ${res.fields.length}`);
  return res.rows[0][res.fields[0].name];
}

async function main() {
  for (const v of ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE']) {
    if (!process.env[v]) {
      console.error(`client.js: ${v} is not set`);
      return 2;
    }
  }
  const client = new Client({ application_name: 'amoeba-node-check' });
  await client.connect();

  await step('select version() / current_schema()', async () => {
    const version = await one(client, 'select version()');
    check(typeof version === 'string' && version.trim() !== '', `version() = ${version}`);
    const schema = await one(client, 'select current_schema()');
    check(schema === 'public', `current_schema() = ${schema}`);
  });

  await step('parameterized text ($1)', async () => {
    result('net_sales_2025_12', asNumeric(await one(client, {
      text: 'select sum(net_sales) from pnl where month = $1', values: ['2025-12'] })));
  });

  await step('parameterized int ($1)', async () => {
    result('order_lines_qty_ge_3', asCount(await one(client, {
      text: 'select count(*) from order_lines where qty >= $1', values: [3] })));
  });

  await step('parameterized numeric as text ($1)', async () => {
    result('order_lines_net_sales_gt_500', asCount(await one(client, {
      text: 'select count(*) from order_lines where net_sales > $1', values: ['500.00'] })));
  });

  await step('parameterized date ($1)', async () => {
    result('net_profit_on_2025_11_11', asNumeric(await one(client, {
      text: 'select sum(net_profit) from pnl where date = $1', values: ['2025-11-11'] })));
  });

  await step('parameterized timestamp ($1: text, and a JS Date when the local zone is UTC)', async () => {
    const count = asCount(await one(client, {
      text: 'select count(*) from order_lines where paid_at >= $1', values: ['2025-12-24 00:00:00'] }));
    result('order_lines_paid_since_2025_12_24', count);
    if (new Date().getTimezoneOffset() === 0) {
      // pg sends a Date as local time with its offset: '2025-12-24T00:00:00.000+00:00'.
      const viaDate = asCount(await one(client, {
        text: 'select count(*) from order_lines where paid_at >= $1', values: [new Date(Date.UTC(2025, 11, 24))] }));
      check(viaDate === count, `JS Date parameter gave ${viaDate}, text parameter ${count}`);
    }
  });

  await step('parameterized bool ($1, $2)', async () => {
    result('jd_completed_lines', asCount(await one(client, {
      text: "select count(*) from order_lines where platform = $1 and (status = 'completed') = $2",
      values: ['jd', true] })));
  });

  await step('named prepared statement run twice', async () => {
    const name = 'amoeba_net_sales_by_month';
    const text = 'select sum(net_sales) as net_sales from pnl where month = $1';
    const nov = await client.query({ name, text, values: ['2025-11'] });
    const dec = await client.query({ name, text, values: ['2025-12'] });
    check(nov.rows.length === 1 && dec.rows.length === 1, 'one row each');
    check(nov.fields[0].dataTypeID === 1700, `net_sales type oid ${nov.fields[0].dataTypeID}, expected 1700 (numeric)`);
    asNumeric(nov.rows[0].net_sales);
    asNumeric(dec.rows[0].net_sales);
    const again = await one(client, { text: 'select sum(net_sales) from pnl where month = $1', values: ['2025-12'] });
    check(dec.rows[0].net_sales === again, `prepared ${dec.rows[0].net_sales} != unnamed ${again}`);
    result('net_sales_2025_11', nov.rows[0].net_sales);
  });

  await step('named prepared statement with several parameter types', async () => {
    const name = 'amoeba_tmall_filtered';
    const text = 'select count(*) as lines, sum(net_sales) as net_sales from order_lines where platform = $1'
      + ' and qty >= $2 and net_sales > $3 and cast(paid_at as date) >= $4 and paid_at < $5'
      + " and (status = 'completed') = $6";
    const values = ['tmall', 2, '100.00', '2025-11-01', '2025-12-01 00:00:00', true];
    const first = await client.query({ name, text, values });
    const second = await client.query({ name, text, values });
    check(JSON.stringify(first.rows) === JSON.stringify(second.rows), 'runs disagree');
    result('tmall_nov_filtered_lines', asCount(first.rows[0].lines));
    result('tmall_nov_filtered_net_sales', asNumeric(first.rows[0].net_sales));
  });

  await step('date result', async () => {
    const d = await one(client, 'select max(cast(paid_at as date)) as last_day from order_lines');
    check(/^\d{4}-\d{2}-\d{2}$/.test(d), `date text ${d}`);
    result('last_paid_date', d);
  });

  await step('many rows, rowMode array', async () => {
    const res = await client.query({
      text: 'select order_id, net_sales from order_lines where platform = $1 and paid_at >= $2 and paid_at < $3',
      values: ['tmall', '2025-10-01 00:00:00', '2026-01-01 00:00:00'],
      rowMode: 'array',
    });
    check(res.rows.length > 300, `only ${res.rows.length} rows`);
    check(res.rowCount === res.rows.length, `rowCount ${res.rowCount} != ${res.rows.length} rows`);
    result('tmall_q4_lines', res.rows.length);
  });

  await step('transactions (BEGIN / COMMIT / ROLLBACK)', async () => {
    await client.query('begin');
    check(Number(await one(client, 'select count(*) from amoeba_units')) > 0, 'no units');
    await client.query('commit');
    await client.query('begin');
    await client.query('select 1');
    await client.query('rollback');
  });

  await step('errors keep the connection usable', async () => {
    let err = null;
    try {
      await client.query({ text: 'select no_such_column from pnl where month = $1', values: ['2025-11'] });
    } catch (e) {
      err = e;
    }
    check(err !== null, 'a query over a missing column did not fail');
    check(typeof err.code === 'string' && err.code.length === 5, `SQLSTATE ${err.code}`);
    check(Number(await one(client, 'select count(*) from amoeba_units')) > 0, 'connection unusable after an error');
  });

  await client.end();
  if (failures.length > 0) {
    console.error(`client.js: ${failures.length} step(s) failed:`);
    for (const f of failures) console.error(`  - ${f}`);
    return 1;
  }
  console.error('client.js: all steps passed');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    console.error('client.js: FAILED with an exception');
    process.exit(1);
  },
);
