-- tool: Grafana 12 (core PostgreSQL data source "grafana-postgresql-datasource"; backend pgx v5, older releases lib/pq)
-- source: J = grafana/grafana public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts (getVersion, getTimescaleDBVersion, showTables, getSchema, buildSchemaConstraint) as called from datasource.ts (fetchTables, fetchFields) and configuration/useAutoDetectFeatures.ts
-- source: K = grafana/grafana pkg/tsdb/grafana-postgresql-datasource/macros.go ($__timeFilter, $__timeGroupAlias, $__time expansions), sqlUtil.ts toRawSql (visual query builder)
-- source: L = health check: pkg/tsdb/grafana-postgresql-datasource/pgx/handler_checkhealth.go -> Ping(). lib/pq's Ping sends the query ";" (kept below); pgx v5's Ping sends the query "-- ping", which this file format cannot express (a statement that is only a comment), so it is not included.
-- The metadata SQL is sent by the backend as raw text without bind parameters. pgx v5 (default exec mode) sends it with Parse/Bind/Execute; lib/pq sends parameterless queries with the simple protocol. They are marked "extended" below.
-- The panel queries are RECONSTRUCTED from the macro expansions in K with a fixed dashboard time range (2024-01-01 .. 2025-01-01) and the pnl columns; their exact text depends on what the user types.
-- step: connect (datasource health check, lib/pq Ping)
-- protocol: simple
;
-- step: connect (auto-detect PostgreSQL version)
-- protocol: extended
-- expect-rows: >0
SELECT current_setting('server_version_num')::int/100 as version;
-- step: connect (auto-detect TimescaleDB)
-- protocol: extended
SELECT extversion FROM pg_extension WHERE extname = 'timescaledb';
-- step: table picker (fetchTables -> showTables())
-- protocol: extended
-- expect-rows: >0
SELECT
    CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          ) THEN 0 ELSE 1 END, 1;
-- step: column picker for pnl (fetchFields -> getSchema('pnl'))
-- protocol: extended
-- expect-rows: >0
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('pnl'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('pnl'))[1]
          AND quote_ident(table_name) = (parse_ident('pnl'))[2]
        ELSE quote_ident(table_name) = 'pnl'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END;
-- step: column picker for cubes.unit_monthly (getSchema('cubes.unit_monthly'), schema-qualified branch)
-- protocol: extended
-- expect-rows: >0
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('cubes.unit_monthly'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('cubes.unit_monthly'))[1]
          AND quote_ident(table_name) = (parse_ident('cubes.unit_monthly'))[2]
        ELSE quote_ident(table_name) = 'cubes.unit_monthly'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END;
-- step: panel query (visual builder toRawSql output; RECONSTRUCTED)
-- protocol: extended
-- expect-rows: >0
SELECT platform, SUM(net_profit) AS "net_profit" FROM pnl GROUP BY platform LIMIT 50 ;
-- step: panel query ($__timeGroupAlias(date, 1d) + $__timeFilter(date) expanded per macros.go; RECONSTRUCTED)
-- protocol: extended
-- expect-rows: >0
SELECT
  floor(extract(epoch from date)/86400)*86400 AS "time",
  sum(net_profit) AS "net_profit"
FROM pnl
WHERE
  date BETWEEN '2024-01-01T00:00:00Z' AND '2025-01-01T00:00:00Z'
GROUP BY 1
ORDER BY 1;
-- step: panel query ($__time(date) + $__timeFilter(date), table format; RECONSTRUCTED)
-- protocol: extended
-- expect-rows: >0
SELECT
  date AS "time",
  platform,
  gross_sales,
  net_profit
FROM pnl
WHERE
  date BETWEEN '2024-01-01T00:00:00Z' AND '2025-01-01T00:00:00Z'
ORDER BY 1;
