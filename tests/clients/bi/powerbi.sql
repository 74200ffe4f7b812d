-- tool: Power BI Desktop, PostgreSQL connector (Power Query PostgreSQL.Database, Npgsql 4.0.10 shipped with Power BI) + modern Npgsql type loading
-- source: O = ravendb/ravendb src/Raven.Server/Integrations/PostgreSQL/Npgsql/NpgsqlConfig.cs ("Power BI Desktop uses and ships with NpgSQL 4.0.10"; Npgsql 4.0.1-4.0.12 TypesQuery, 4.0.4-4.1.1 CompositeTypesQuery, 4.0.0-4.1.1 EnumTypesQuery, texts as sent)
-- source: P = npgsql/npgsql src/Npgsql/PostgresDatabaseInfo.cs (Npgsql 6-8: GenerateLoadTypesQuery(withRange: true, withMultirange: true, loadTableComposites: false), GenerateLoadCompositeTypesQuery, GenerateLoadEnumFieldsQuery, batched after "SELECT version();" with AppendLine and sent with conn.WriteQuery = simple protocol)
-- source: Q = ravendb/ravendb src/Raven.Server/Integrations/PostgreSQL/PowerBI/PowerBIAllCollectionsQuery.cs (navigator table list, exact text), PowerBIConfig.cs (character_sets query; prefixes of the foreign-key and constraint queries), PowerBIPreviewQuery.cs (regex of the per-table column query)
-- source: R = full text of the Power BI column / foreign-key / key queries from a Power BI mock server fixture found in the public code index (repository not named by the index); its whitespace is normalised (the originals are multi-line, e.g. "select\n    pkcol.COLUMN_NAME as PK_COLUMN_NAME,\n    ..." per Q)
-- Reconstructed: the data-load SELECT at the end (shape from RavenDB PowerBIFetchQuery's regex: select "$Table"."col" as "col", ... from "public"."pnl" "$Table" limit N).
-- Protocol: Npgsql sends every NpgsqlCommand with the extended protocol (one Parse/Bind/Execute per statement, values inlined here as in the sources). Npgsql 6-8 sends its type-loading batch as a single simple Query message; a runner that splits on ';' at end of line will send it as four Query messages instead.
-- Lines starting with "-- " inside the Npgsql 6-8 batch (e.g. "-- Load enum fields") are SQL comments that are part of the statement, not file headers.
-- step: connect (Npgsql 4.0.x type loading 1/3, as shipped with Power BI Desktop)
-- protocol: extended
-- expect-rows: >0
/*** Load all supported types ***/
SELECT ns.nspname, a.typname, a.oid, a.typrelid, a.typbasetype,
CASE WHEN pg_proc.proname='array_recv' THEN 'a' ELSE a.typtype END AS type,
CASE
  WHEN pg_proc.proname='array_recv' THEN a.typelem
  WHEN a.typtype='r' THEN rngsubtype
  ELSE 0
END AS elemoid,
CASE
  WHEN pg_proc.proname IN ('array_recv','oidvectorrecv') THEN 3    /* Arrays last */
  WHEN a.typtype='r' THEN 2                                        /* Ranges before */
  WHEN a.typtype='d' THEN 1                                        /* Domains before */
  ELSE 0                                                           /* Base types first */
END AS ord
FROM pg_type AS a
JOIN pg_namespace AS ns ON (ns.oid = a.typnamespace)
JOIN pg_proc ON pg_proc.oid = a.typreceive
LEFT OUTER JOIN pg_class AS cls ON (cls.oid = a.typrelid)
LEFT OUTER JOIN pg_type AS b ON (b.oid = a.typelem)
LEFT OUTER JOIN pg_class AS elemcls ON (elemcls.oid = b.typrelid)
LEFT OUTER JOIN pg_range ON (pg_range.rngtypid = a.oid) 
WHERE
  a.typtype IN ('b', 'r', 'e', 'd') OR         /* Base, range, enum, domain */
  (a.typtype = 'c' AND cls.relkind='c') OR /* User-defined free-standing composites (not table composites) by default */
  (pg_proc.proname='array_recv' AND (
    b.typtype IN ('b', 'r', 'e', 'd') OR       /* Array of base, range, enum, domain */
    (b.typtype = 'p' AND b.typname IN ('record', 'void')) OR /* Arrays of special supported pseudo-types */
    (b.typtype = 'c' AND elemcls.relkind='c')  /* Array of user-defined free-standing composites (not table composites) */
  )) OR
  (a.typtype = 'p' AND a.typname IN ('record', 'void'))  /* Some special supported pseudo-types */
ORDER BY ord;
-- step: connect (Npgsql 4.0.x type loading 2/3)
-- protocol: extended
/*** Load field definitions for (free-standing) composite types ***/
SELECT typ.oid, att.attname, att.atttypid
FROM pg_type AS typ
JOIN pg_namespace AS ns ON (ns.oid = typ.typnamespace)
JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
JOIN pg_attribute AS att ON (att.attrelid = typ.typrelid)
WHERE
  (typ.typtype = 'c' AND cls.relkind='c') AND
  attnum > 0 AND     /* Don't load system attributes */
  NOT attisdropped
ORDER BY typ.oid, att.attnum;
-- step: connect (Npgsql 4.0.x type loading 3/3)
-- protocol: extended
/*** Load enum fields ***/
SELECT pg_type.oid, enumlabel
FROM pg_enum
JOIN pg_type ON pg_type.oid=enumtypid
ORDER BY oid, enumsortorder;
-- step: connect (Npgsql 6-8 PostgresDatabaseInfo.LoadBackendTypes: ONE Query message with four statements)
-- protocol: simple
-- expect-rows: >0
SELECT version();

SELECT ns.nspname, t.oid, t.typname, t.typtype, t.typnotnull, t.elemtypoid
FROM (
    -- Arrays have typtype=b - this subquery identifies them by their typreceive and converts their typtype to a
    -- We first do this for the type (innerest-most subquery), and then for its element type
    -- This also returns the array element, range subtype and domain base type as elemtypoid
    SELECT
        typ.oid, typ.typnamespace, typ.typname, typ.typtype, typ.typrelid, typ.typnotnull, typ.relkind,
        elemtyp.oid AS elemtypoid, elemtyp.typname AS elemtypname, elemcls.relkind AS elemrelkind,
        CASE WHEN elemproc.proname='array_recv' THEN 'a' ELSE elemtyp.typtype END AS elemtyptype
    FROM (
        SELECT typ.oid, typnamespace, typname, typrelid, typnotnull, relkind, typelem AS elemoid,
            CASE WHEN proc.proname='array_recv' THEN 'a' ELSE typ.typtype END AS typtype,
            CASE
                WHEN proc.proname='array_recv' THEN typ.typelem
                WHEN typ.typtype='r' THEN rngsubtype
                WHEN typ.typtype='m' THEN (SELECT rngtypid FROM pg_range WHERE rngmultitypid = typ.oid)
                WHEN typ.typtype='d' THEN typ.typbasetype
            END AS elemtypoid
        FROM pg_type AS typ
        LEFT JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
        LEFT JOIN pg_proc AS proc ON proc.oid = typ.typreceive
        LEFT JOIN pg_range ON (pg_range.rngtypid = typ.oid)
    ) AS typ
    LEFT JOIN pg_type AS elemtyp ON elemtyp.oid = elemtypoid
    LEFT JOIN pg_class AS elemcls ON (elemcls.oid = elemtyp.typrelid)
    LEFT JOIN pg_proc AS elemproc ON elemproc.oid = elemtyp.typreceive
) AS t
JOIN pg_namespace AS ns ON (ns.oid = typnamespace)
WHERE
    typtype IN ('b', 'r', 'm', 'e', 'd') OR -- Base, range, multirange, enum, domain
    (typtype = 'c' AND relkind='c') OR -- User-defined free-standing composites (not table composites) by default
    (typtype = 'p' AND typname IN ('record', 'void')) OR -- Some special supported pseudo-types
    (typtype = 'a' AND (  -- Array of...
        elemtyptype IN ('b', 'r', 'm', 'e', 'd') OR -- Array of base, range, multirange, enum, domain
        (elemtyptype = 'p' AND elemtypname IN ('record', 'void')) OR -- Arrays of special supported pseudo-types
        (elemtyptype = 'c' AND elemrelkind='c') -- Array of user-defined free-standing composites (not table composites) by default
    ))
ORDER BY CASE
       WHEN typtype IN ('b', 'e', 'p') THEN 0           -- First base types, enums, pseudo-types
       WHEN typtype = 'r' THEN 1                        -- Ranges after
       WHEN typtype = 'm' THEN 2                        -- Multiranges after
       WHEN typtype = 'c' THEN 3                        -- Composites after
       WHEN typtype = 'd' AND elemtyptype <> 'a' THEN 4 -- Domains over non-arrays after
       WHEN typtype = 'a' THEN 5                        -- Arrays after
       WHEN typtype = 'd' AND elemtyptype = 'a' THEN 6  -- Domains over arrays last
END;

-- Load field definitions for (free-standing) composite types
SELECT typ.oid, att.attname, att.atttypid
FROM pg_type AS typ
JOIN pg_namespace AS ns ON (ns.oid = typ.typnamespace)
JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
JOIN pg_attribute AS att ON (att.attrelid = typ.typrelid)
WHERE
  (typ.typtype = 'c' AND cls.relkind='c') AND
  attnum > 0 AND     -- Don't load system attributes
  NOT attisdropped
ORDER BY typ.oid, att.attnum;

-- Load enum fields
SELECT pg_type.oid, enumlabel
FROM pg_enum
JOIN pg_type ON pg_type.oid=enumtypid
ORDER BY oid, enumsortorder;
-- step: navigator (character sets)
-- protocol: extended
-- expect-rows: >0
select character_set_name from INFORMATION_SCHEMA.character_sets;
-- step: navigator (tables)
-- protocol: extended
-- expect-rows: >0
select TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE
from INFORMATION_SCHEMA.tables
where TABLE_SCHEMA not in ('information_schema', 'pg_catalog')
order by TABLE_SCHEMA, TABLE_NAME;
-- step: browse table pnl (columns)
-- protocol: extended
-- expect-rows: >0
select COLUMN_NAME, ORDINAL_POSITION, IS_NULLABLE, case when (data_type like '%unsigned%') then DATA_TYPE || ' unsigned' else DATA_TYPE end as DATA_TYPE from INFORMATION_SCHEMA.columns where TABLE_SCHEMA = 'public' and TABLE_NAME = 'pnl' order by TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION;
-- step: browse table pnl (foreign keys where pnl is the referenced table)
-- protocol: extended
select pkcol.COLUMN_NAME as PK_COLUMN_NAME, fkcol.TABLE_SCHEMA AS FK_TABLE_SCHEMA, fkcol.TABLE_NAME AS FK_TABLE_NAME, fkcol.COLUMN_NAME as FK_COLUMN_NAME, fkcol.ORDINAL_POSITION as ORDINAL, fkcon.CONSTRAINT_SCHEMA || '_' || fkcol.TABLE_NAME || '_' || 'pnl' || '_' || fkcon.CONSTRAINT_NAME as FK_NAME from (select distinct constraint_catalog, constraint_schema, unique_constraint_schema, constraint_name, unique_constraint_name from INFORMATION_SCHEMA.REFERENTIAL_CONSTRAINTS) fkcon inner join INFORMATION_SCHEMA.KEY_COLUMN_USAGE fkcol on fkcon.CONSTRAINT_SCHEMA = fkcol.CONSTRAINT_SCHEMA and fkcon.CONSTRAINT_NAME = fkcol.CONSTRAINT_NAME inner join INFORMATION_SCHEMA.KEY_COLUMN_USAGE pkcol on fkcon.UNIQUE_CONSTRAINT_SCHEMA = pkcol.CONSTRAINT_SCHEMA and fkcon.UNIQUE_CONSTRAINT_NAME = pkcol.CONSTRAINT_NAME where pkcol.TABLE_SCHEMA = 'public' and pkcol.TABLE_NAME = 'pnl' and pkcol.ORDINAL_POSITION = fkcol.ORDINAL_POSITION order by FK_NAME, fkcol.ORDINAL_POSITION;
-- step: browse table pnl (foreign keys of pnl)
-- protocol: extended
select pkcol.TABLE_SCHEMA AS PK_TABLE_SCHEMA, pkcol.TABLE_NAME AS PK_TABLE_NAME, pkcol.COLUMN_NAME as PK_COLUMN_NAME, fkcol.COLUMN_NAME as FK_COLUMN_NAME, fkcol.ORDINAL_POSITION as ORDINAL, fkcon.CONSTRAINT_SCHEMA || '_' || 'pnl' || '_' || pkcol.TABLE_NAME || '_' || fkcon.CONSTRAINT_NAME as FK_NAME from (select distinct constraint_catalog, constraint_schema, unique_constraint_schema, constraint_name, unique_constraint_name from INFORMATION_SCHEMA.REFERENTIAL_CONSTRAINTS) fkcon inner join INFORMATION_SCHEMA.KEY_COLUMN_USAGE fkcol on fkcon.CONSTRAINT_SCHEMA = fkcol.CONSTRAINT_SCHEMA and fkcon.CONSTRAINT_NAME = fkcol.CONSTRAINT_NAME inner join INFORMATION_SCHEMA.KEY_COLUMN_USAGE pkcol on fkcon.UNIQUE_CONSTRAINT_SCHEMA = pkcol.CONSTRAINT_SCHEMA and fkcon.UNIQUE_CONSTRAINT_NAME = pkcol.CONSTRAINT_NAME where fkcol.TABLE_SCHEMA = 'public' and fkcol.TABLE_NAME = 'pnl' and pkcol.ORDINAL_POSITION = fkcol.ORDINAL_POSITION order by FK_NAME, fkcol.ORDINAL_POSITION;
-- step: browse table pnl (keys/indexes)
-- protocol: extended
select i.CONSTRAINT_SCHEMA || '_' || i.CONSTRAINT_NAME as INDEX_NAME, ii.COLUMN_NAME, ii.ORDINAL_POSITION, case when i.CONSTRAINT_TYPE = 'PRIMARY KEY' then 'Y' else 'N' end as PRIMARY_KEY
from INFORMATION_SCHEMA.table_constraints i inner join INFORMATION_SCHEMA.key_column_usage ii on i.CONSTRAINT_SCHEMA = ii.CONSTRAINT_SCHEMA and i.CONSTRAINT_NAME = ii.CONSTRAINT_NAME and i.TABLE_SCHEMA = ii.TABLE_SCHEMA and i.TABLE_NAME = ii.TABLE_NAME where i.TABLE_SCHEMA = 'public' and i.TABLE_NAME = 'pnl' and i.CONSTRAINT_TYPE in ('PRIMARY KEY', 'UNIQUE') order by i.CONSTRAINT_SCHEMA || '_' || i.CONSTRAINT_NAME, ii.TABLE_SCHEMA, ii.TABLE_NAME, ii.ORDINAL_POSITION;
-- step: browse table cubes.unit_monthly (columns)
-- protocol: extended
-- expect-rows: >0
select COLUMN_NAME, ORDINAL_POSITION, IS_NULLABLE, case when (data_type like '%unsigned%') then DATA_TYPE || ' unsigned' else DATA_TYPE end as DATA_TYPE from INFORMATION_SCHEMA.columns where TABLE_SCHEMA = 'cubes' and TABLE_NAME = 'unit_monthly' order by TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION;
-- step: preview table pnl (data load; RECONSTRUCTED from the query shape matched by RavenDB PowerBIFetchQuery)
-- protocol: extended
-- expect-rows: >0
select "$Table"."date" as "date",
    "$Table"."month" as "month",
    "$Table"."platform" as "platform",
    "$Table"."shop_id" as "shop_id",
    "$Table"."sku" as "sku",
    "$Table"."campaign" as "campaign",
    "$Table"."unit_id" as "unit_id",
    "$Table"."gross_sales" as "gross_sales",
    "$Table"."seller_discount" as "seller_discount",
    "$Table"."shipping_income" as "shipping_income",
    "$Table"."refund" as "refund",
    "$Table"."cogs" as "cogs",
    "$Table"."inventory_loss" as "inventory_loss",
    "$Table"."platform_commission" as "platform_commission",
    "$Table"."platform_service_fee" as "platform_service_fee",
    "$Table"."payment_fee" as "payment_fee",
    "$Table"."shipping_cost" as "shipping_cost",
    "$Table"."packaging" as "packaging",
    "$Table"."advertising" as "advertising",
    "$Table"."affiliate_commission" as "affiliate_commission",
    "$Table"."other_platform_fee" as "other_platform_fee",
    "$Table"."internal_revenue" as "internal_revenue",
    "$Table"."internal_cost" as "internal_cost",
    "$Table"."allocated_hq" as "allocated_hq",
    "$Table"."allocated_it" as "allocated_it",
    "$Table"."allocated_other" as "allocated_other",
    "$Table"."allocated_platform_fees" as "allocated_platform_fees",
    "$Table"."allocated_rent" as "allocated_rent",
    "$Table"."allocated_staff" as "allocated_staff",
    "$Table"."allocated_u11" as "allocated_u11",
    "$Table"."allocated_total" as "allocated_total",
    "$Table"."net_sales" as "net_sales",
    "$Table"."gross_profit" as "gross_profit",
    "$Table"."cm2" as "cm2",
    "$Table"."cm3" as "cm3",
    "$Table"."net_profit" as "net_profit"
from "public"."pnl" "$Table"
limit 1000;
