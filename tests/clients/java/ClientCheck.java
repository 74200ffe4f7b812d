// pgjdbc (Debian's libpostgresql-jdbc-java) against the Amoeba server.
//
//   javac -cp /usr/share/java/postgresql.jar -d OUT ClientCheck.java
//   java -cp OUT:/usr/share/java/postgresql.jar ClientCheck
//
// Connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE. Prints `RESULT <name>=<value>`
// for checks of ../checks.sql and asserts the driver's behaviour itself: DatabaseMetaData (getTables,
// getColumns, getSchemas), PreparedStatements with setString/setInt/setBigDecimal/setDate/
// setTimestamp/setBoolean run more than prepareThreshold (5) times, so that pgjdbc switches to a
// named server-side statement (and binary transfer), a fetch-size read (portal suspended / resumed)
// inside a transaction, and transactions. Every step runs; exit 1 lists the failed ones.

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.Set;

public class ClientCheck {
    static final int RUNS = 7; // > prepareThreshold (5): the 5th and later executions use a named server-side statement
    static final List<String> failures = new ArrayList<>();

    interface Step {
        void run() throws Exception;
    }

    static void step(String label, Step body) {
        try {
            body.run();
            System.err.println("ok   " + label);
        } catch (Throwable e) {
            String msg = e.getClass().getSimpleName() + ": " + e.getMessage();
            if (e instanceof SQLException && ((SQLException) e).getSQLState() != null) {
                msg += " [SQLSTATE " + ((SQLException) e).getSQLState() + "]";
            }
            failures.add(label + ": " + msg);
            System.err.println("FAIL " + label + ": " + msg);
            e.printStackTrace(System.err);
        }
    }

    static void check(boolean cond, String message) {
        if (!cond) throw new AssertionError(message);
    }

    static String fmt(Object v) {
        if (v instanceof BigDecimal) return ((BigDecimal) v).toPlainString();
        if (v instanceof Date) return ((Date) v).toLocalDate().toString();
        if (v instanceof LocalDate) return v.toString();
        return String.valueOf(v);
    }

    static void result(String name, Object value) {
        System.out.println("RESULT " + name + "=" + fmt(value));
        System.out.flush();
    }

    static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    static Connection connect(String url, Properties props) throws SQLException {
        return DriverManager.getConnection(url, props);
    }

    interface Binder {
        void bind(PreparedStatement ps) throws SQLException;
    }

    /** Runs a one-row query RUNS times through the same PreparedStatement; every run must agree. */
    static List<Object> preparedRow(Connection conn, String sql, Binder binder, int columns) throws SQLException {
        List<Object> first = null;
        try (PreparedStatement ps = conn.prepareStatement(sql)) {
            for (int run = 1; run <= RUNS; run++) {
                binder.bind(ps);
                List<Object> row = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "no row from " + sql + " (run " + run + ")");
                    check(rs.getMetaData().getColumnCount() == columns,
                            "expected " + columns + " column(s), got " + rs.getMetaData().getColumnCount());
                    for (int c = 1; c <= columns; c++) row.add(rs.getObject(c));
                    check(!rs.next(), "more than one row from " + sql);
                }
                if (first == null) first = row;
                check(Objects.equals(first, row), "run " + run + " of " + sql + " returned " + row + ", run 1 returned " + first);
            }
        }
        return first;
    }

    static Object preparedValue(Connection conn, String name, String sql, Binder binder, Class<?> type) throws SQLException {
        Object v = preparedRow(conn, sql, binder, 1).get(0);
        check(type.isInstance(v), name + ": expected " + type.getSimpleName() + ", got "
                + (v == null ? "null" : v.getClass().getSimpleName() + " " + v));
        result(name, v);
        return v;
    }

    public static void main(String[] args) {
        try {
            System.exit(run());
        } catch (Throwable e) {
            e.printStackTrace();
            System.err.println("ClientCheck: FAILED with an exception");
            System.exit(1);
        }
    }

    static int run() throws Exception {
        String host = env("PGHOST", "127.0.0.1"), port = env("PGPORT", "5432"), db = env("PGDATABASE", "amoeba");
        String user = env("PGUSER", null);
        if (user == null) {
            System.err.println("ClientCheck: PGUSER is not set");
            return 2;
        }
        String url = "jdbc:postgresql://" + host + ":" + port + "/" + db;
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", env("PGPASSWORD", ""));
        props.setProperty("ApplicationName", "amoeba-jdbc-check");

        Connection conn = connect(url, props);
        DatabaseMetaData md = conn.getMetaData();
        System.err.println("driver " + md.getDriverName() + " " + md.getDriverVersion() + "; server "
                + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());

        step("select version() / current_schema()", () -> {
            try (Statement st = conn.createStatement()) {
                try (ResultSet rs = st.executeQuery("select version()")) {
                    check(rs.next() && rs.getString(1) != null && !rs.getString(1).isBlank(), "version() empty");
                }
                try (ResultSet rs = st.executeQuery("select current_schema()")) {
                    check(rs.next(), "no row");
                    check("public".equals(rs.getString(1)), "current_schema() = " + rs.getString(1));
                }
            }
            check("public".equals(conn.getSchema()), "Connection.getSchema() = " + conn.getSchema());
        });

        step("DatabaseMetaData.getSchemas", () -> {
            Set<String> schemas = new HashSet<>();
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
            }
            check(schemas.contains("public") && schemas.contains("cubes"), "schemas " + schemas + " lack public/cubes");
        });

        step("DatabaseMetaData.getTables", () -> {
            Map<String, String> kinds = new HashMap<>();
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) kinds.put(rs.getString("TABLE_NAME"), rs.getString("TABLE_TYPE"));
            }
            check("VIEW".equals(kinds.get("pnl")), "pnl: " + kinds.get("pnl") + " in " + kinds);
            check("VIEW".equals(kinds.get("order_lines")), "order_lines: " + kinds.get("order_lines"));
            check("TABLE".equals(kinds.get("amoeba_units")), "amoeba_units: " + kinds.get("amoeba_units"));
            Set<String> cubes = new HashSet<>();
            try (ResultSet rs = md.getTables(null, "cubes", "%", null)) {
                while (rs.next()) cubes.add(rs.getString("TABLE_NAME"));
            }
            check(cubes.contains("unit_monthly"), "cubes tables " + cubes + " lack unit_monthly");
        });

        step("DatabaseMetaData.getColumns", () -> {
            Map<String, Integer> types = new HashMap<>();
            Map<String, String> typeNames = new HashMap<>();
            try (ResultSet rs = md.getColumns(null, "public", "pnl", "%")) {
                while (rs.next()) {
                    types.put(rs.getString("COLUMN_NAME"), rs.getInt("DATA_TYPE"));
                    typeNames.put(rs.getString("COLUMN_NAME"), rs.getString("TYPE_NAME"));
                }
            }
            for (String c : new String[] {"date", "month", "platform", "shop_id", "sku", "unit_id", "gross_sales",
                    "net_sales", "gross_profit", "cm3", "net_profit"}) {
                check(types.containsKey(c), "pnl has no column " + c + ": " + types.keySet());
            }
            check(types.get("net_sales") == Types.NUMERIC, "pnl.net_sales DATA_TYPE " + types.get("net_sales")
                    + " (" + typeNames.get("net_sales") + "), expected NUMERIC");
            check(types.get("date") == Types.DATE, "pnl.date DATA_TYPE " + types.get("date") + " (" + typeNames.get("date") + ")");
            check(types.get("month") == Types.VARCHAR, "pnl.month DATA_TYPE " + types.get("month") + " (" + typeNames.get("month") + ")");
            Map<String, Integer> ol = new HashMap<>();
            try (ResultSet rs = md.getColumns(null, "public", "order_lines", null)) {
                while (rs.next()) ol.put(rs.getString("COLUMN_NAME"), rs.getInt("DATA_TYPE"));
            }
            check(ol.get("paid_at") != null && ol.get("paid_at") == Types.TIMESTAMP, "order_lines.paid_at DATA_TYPE " + ol.get("paid_at"));
            check(ol.get("qty") != null && ol.get("qty") == Types.BIGINT, "order_lines.qty DATA_TYPE " + ol.get("qty"));
        });

        step("PreparedStatement setString", () -> {
            for (String month : new String[] {"2025-11", "2025-12"}) {
                preparedValue(conn, "net_sales_" + month.replace('-', '_'), "select sum(net_sales) from pnl where month = ?",
                        ps -> ps.setString(1, month), BigDecimal.class);
            }
        });
        step("PreparedStatement setInt", () -> {
            preparedValue(conn, "order_lines_qty_ge_3", "select count(*) from order_lines where qty >= ?",
                    ps -> ps.setInt(1, 3), Long.class);
            preparedValue(conn, "units_headcount_ge_5", "select count(*) from amoeba_units where headcount >= ?",
                    ps -> ps.setInt(1, 5), Long.class);
        });
        step("PreparedStatement setBigDecimal", () -> preparedValue(conn, "order_lines_net_sales_gt_500",
                "select count(*) from order_lines where net_sales > ?", ps -> ps.setBigDecimal(1, new BigDecimal("500.00")), Long.class));
        step("PreparedStatement setDate", () -> preparedValue(conn, "net_profit_on_2025_11_11",
                "select sum(net_profit) from pnl where date = ?", ps -> ps.setDate(1, Date.valueOf("2025-11-11")), BigDecimal.class));
        step("PreparedStatement setTimestamp", () -> preparedValue(conn, "order_lines_paid_since_2025_12_24",
                "select count(*) from order_lines where paid_at >= ?",
                ps -> ps.setTimestamp(1, Timestamp.valueOf("2025-12-24 00:00:00")), Long.class));
        step("PreparedStatement setBoolean", () -> preparedValue(conn, "jd_completed_lines",
                "select count(*) from order_lines where platform = ? and (status = 'completed') = ?",
                ps -> { ps.setString(1, "jd"); ps.setBoolean(2, true); }, Long.class));

        step("PreparedStatement with all six setters", () -> {
            List<Object> row = preparedRow(conn,
                    "select count(*), sum(net_sales) from order_lines where platform = ? and qty >= ? and net_sales > ?"
                            + " and cast(paid_at as date) >= ? and paid_at < ? and (status = 'completed') = ?",
                    ps -> {
                        ps.setString(1, "tmall");
                        ps.setInt(2, 2);
                        ps.setBigDecimal(3, new BigDecimal("100.00"));
                        ps.setDate(4, Date.valueOf("2025-11-01"));
                        ps.setTimestamp(5, Timestamp.valueOf("2025-12-01 00:00:00"));
                        ps.setBoolean(6, true);
                    }, 2);
            check(row.get(0) instanceof Long && row.get(1) instanceof BigDecimal, "types " + row);
            result("tmall_nov_filtered_lines", row.get(0));
            result("tmall_nov_filtered_net_sales", row.get(1));
        });

        step("date result (getDate / getObject(LocalDate))", () -> {
            try (PreparedStatement ps = conn.prepareStatement("select max(cast(paid_at as date)) as last_day from order_lines");
                 ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "no row");
                ResultSetMetaData rmd = rs.getMetaData();
                check(rmd.getColumnType(1) == Types.DATE, "column type " + rmd.getColumnTypeName(1));
                Date d = rs.getDate(1);
                LocalDate ld = rs.getObject(1, LocalDate.class);
                check(d.toLocalDate().equals(ld), d + " vs " + ld);
                result("last_paid_date", ld);
            }
        });

        step("transactions (autocommit off, commit, rollback)", () -> {
            try (Connection c = connect(url, props)) {
                c.setAutoCommit(false);
                try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("select count(*) from amoeba_units")) {
                    check(rs.next() && rs.getLong(1) > 0, "no units");
                }
                c.commit();
                try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("select 1")) {
                    check(rs.next(), "no row");
                }
                c.rollback();
                c.setAutoCommit(true);
            }
        });

        step("SET / SHOW", () -> {
            try (Statement st = conn.createStatement()) {
                st.execute("set application_name = 'amoeba-jdbc-set'");
                try (ResultSet rs = st.executeQuery("show application_name")) {
                    check(rs.next() && "amoeba-jdbc-set".equals(rs.getString(1)), "SHOW application_name after SET");
                }
                st.execute("set statement_timeout = 0");
            }
            conn.setClientInfo("ApplicationName", "amoeba-jdbc-check");
            check(conn.isValid(5), "Connection.isValid");
        });

        step("fetch size (portal suspended/resumed) inside a transaction", () -> {
            try (Connection c = connect(url, props)) {
                c.setAutoCommit(false);
                long count = 0;
                BigDecimal total = BigDecimal.ZERO;
                try (PreparedStatement ps = c.prepareStatement("select order_id, net_sales, paid_at from order_lines"
                        + " where platform = ? and paid_at >= ? and paid_at < ?")) {
                    ps.setFetchSize(100); // several portal suspensions on the test warehouse
                    ps.setString(1, "tmall");
                    ps.setTimestamp(2, Timestamp.valueOf("2025-10-01 00:00:00"));
                    ps.setTimestamp(3, Timestamp.valueOf("2026-01-01 00:00:00"));
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            count++;
                            BigDecimal v = rs.getBigDecimal(2);
                            if (v != null) total = total.add(v);
                        }
                    }
                }
                c.commit();
                check(count > 300, "only " + count + " rows");
                result("tmall_q4_lines", count);
                result("tmall_q4_net_sales", total);
            }
        });

        conn.close();
        if (!failures.isEmpty()) {
            System.err.println("ClientCheck: " + failures.size() + " step(s) failed:");
            for (String f : failures) System.err.println("  - " + f);
            return 1;
        }
        System.err.println("ClientCheck: all steps passed");
        return 0;
    }
}
